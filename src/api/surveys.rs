//! Survey routes (SPEC §5): surveys, the kiosk submission and reading a response.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{Check, Field, Wire, response_context, text};
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiPath, Body, QueryMap, paginate, path_id};
use super::idempotency::{Answer, Idempotency};
use super::{AppState, ListOf};
use crate::domain::survey::{Completeness, Question, validate_answers, validate_questions};
use crate::domain::time::{format_ms, format_opt, now_ms};
use crate::domain::{ContactId, ResponseId, SurveyId};
use crate::events;
use crate::store::deliveries::enqueue_event;
use crate::store::messages;
use crate::store::surveys::{self, Response, Survey};
use crate::store::{StoreError, contacts};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_survey, list_surveys))
        .routes(routes!(get_survey))
        .routes(routes!(submit_response))
        .routes(routes!(get_response))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SurveyView {
    id: SurveyId,
    title: String,
    #[schema(value_type = Vec<Object>)]
    questions: Vec<Question>,
    created_at: String,
}

impl From<&Survey> for SurveyView {
    fn from(s: &Survey) -> Self {
        Self {
            id: s.id,
            title: s.title.clone(),
            questions: s.questions.clone(),
            created_at: format_ms(s.created_at),
        }
    }
}

/// The survey body.
#[derive(Deserialize, ToSchema)]
pub struct SurveyInput {
    /// 1 to 200 characters.
    #[serde(default)]
    #[schema(value_type = String, required)]
    title: Field<String>,
    /// `{id, type, text, required?, choices?: [{id, label}]}`; `type` one of text,
    /// single_choice, multi_choice, rating (1-5), nps (0-10).
    #[serde(default)]
    #[schema(value_type = Vec<Object>, required)]
    questions: Field<Vec<Question>>,
}

/// A question as sent: the domain's own shape, whose serde error says what is wrong.
impl Wire for Question {
    fn from_json(value: Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|e| format!("is not a question: {e}"))
    }
}

/// Create a survey.
#[utoipa::path(post, path = "/api/surveys", tag = "surveys", request_body = SurveyInput,
    responses((status = 201, body = SurveyView), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_survey(
    State(app): State<AppState>,
    idempotency: Idempotency,
    Body(body): Body<SurveyInput>,
) -> ApiResult<Answer> {
    let mut c = Check::new();
    let title = c.required("title", body.title, text(1, 200));
    let questions = c.required("questions", body.questions, Ok);
    if let Some(questions) = &questions {
        for (field, message) in validate_questions(questions) {
            c.error(field, message);
        }
    }
    c.finish()?;
    let (title, questions) = (title.expect("required"), questions.expect("required"));
    let (_, answer) = idempotency
        .write(
            &app.store,
            move |c| surveys::insert(c, &title, &questions, now_ms()),
            |survey| Ok(Answer::json(StatusCode::CREATED, &SurveyView::from(survey))),
        )
        .await?;
    Ok(answer)
}

/// List surveys.
#[utoipa::path(get, path = "/api/surveys", tag = "surveys",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ListOf<SurveyView>)))]
async fn list_surveys(
    State(app): State<AppState>,
    query: QueryMap,
) -> ApiResult<Json<ListOf<SurveyView>>> {
    let page = query.page::<SurveyId>()?;
    let rows = app
        .store
        .read(move |c| surveys::list(c, page.cursor, page.limit + 1))
        .await?;
    let (rows, next) = paginate(rows, page.limit, |s| s.id.to_string());
    Ok(Json(ListOf {
        items: rows.iter().map(SurveyView::from).collect(),
        next_cursor: next,
    }))
}

/// Get a survey.
#[utoipa::path(get, path = "/api/surveys/{surveyId}", tag = "surveys", params(("surveyId" = String, Path)),
    responses((status = 200, body = SurveyView), (status = 404, body = ErrorBody)))]
async fn get_survey(
    State(app): State<AppState>,
    ApiPath(survey): ApiPath<String>,
) -> ApiResult<Json<SurveyView>> {
    let id: SurveyId = path_id(&survey)?;
    let survey = app.store.survey(id).await?;
    Ok(Json(SurveyView::from(&*survey)))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseView<'r> {
    id: ResponseId,
    survey_id: SurveyId,
    contact_id: Option<ContactId>,
    /// `started` or `completed`.
    status: &'static str,
    #[schema(value_type = Object)]
    answers: &'r Map<String, Value>,
    #[schema(value_type = Object)]
    embedded_data: &'r Map<String, Value>,
    #[schema(value_type = Object)]
    metadata: &'r Map<String, Value>,
    started_at: String,
    completed_at: Option<String>,
}

/// Borrows the response's maps: a submission's answers are rendered, not copied.
impl<'r> From<&'r Response> for ResponseView<'r> {
    fn from(r: &'r Response) -> Self {
        Self {
            id: r.id,
            survey_id: r.survey_id,
            contact_id: r.contact_id,
            status: if r.completed { "completed" } else { "started" },
            answers: &r.answers,
            embedded_data: &r.embedded_data,
            metadata: &r.metadata,
            started_at: format_ms(r.started_at),
            completed_at: format_opt(r.completed_at),
        }
    }
}

/// The kiosk submission body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionInput {
    /// A known contact, if the respondent is one.
    #[serde(default)]
    #[schema(value_type = String, format = Uuid)]
    contact_id: Field<String>,
    /// `{"<questionId>": {"value": ..}}` or `{"<questionId>": {"choiceIds": [..]}}`.
    #[serde(default)]
    #[schema(value_type = Object, required)]
    answers: Field<Map<String, Value>>,
    /// Kept with the response and sent in its events; at most 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    embedded_data: Field<Map<String, Value>>,
    /// Kept with the response and sent in its events; at most 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Field<Map<String, Value>>,
}

/// Most bytes of embedded data or metadata kept with a response.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// Store a completed response (kiosk or API) and emit `survey.response_completed` in the
/// same transaction.
#[utoipa::path(post, path = "/api/surveys/{surveyId}/responses", tag = "responses",
    params(("surveyId" = String, Path)), request_body = SubmissionInput,
    responses((status = 201, body = ResponseView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn submit_response(
    State(app): State<AppState>,
    idempotency: Idempotency,
    ApiPath(survey): ApiPath<String>,
    Body(body): Body<SubmissionInput>,
) -> ApiResult<Answer> {
    let survey_id: SurveyId = path_id(&survey)?;
    let survey = app.store.survey(survey_id).await?;
    let mut c = Check::new();
    let contact_id = c.optional("contactId", body.contact_id, |text| {
        text.parse::<ContactId>()
            .map_err(|_| "is not a contact id".to_owned())
    });
    let answers = c.required("answers", body.answers, Ok);
    let (embedded_data, metadata) =
        response_context(&mut c, body.embedded_data, body.metadata, MAX_CONTEXT_BYTES);
    let answers = answers.and_then(|answers| {
        match validate_answers(&survey.questions, &answers, Completeness::Complete) {
            Ok(clean) => Some(clean),
            Err(errors) => {
                for (field, message) in errors {
                    c.error(field, message);
                }
                None
            }
        }
    });
    c.finish()?;
    let now = now_ms();
    let response = Response {
        id: ResponseId::new(),
        survey_id,
        contact_id,
        invitation_id: None,
        completed: true,
        answers: answers.expect("validated"),
        embedded_data,
        metadata,
        started_at: now,
        completed_at: Some(now),
    };
    let event = events::response_completed(&response, now);
    // Rendered now, from the response the write then owns: nothing is copied for either.
    let answer = Answer::json(StatusCode::CREATED, &ResponseView::from(&response));
    let (woken, answer) = idempotency
        .write(
            &app.store,
            move |c| {
                if let Some(contact) = response.contact_id {
                    contacts::require(c, contact).map_err(|e| match e {
                        StoreError::NotFound => StoreError::Invalid {
                            field: "contactId",
                            message: "is not a known contact".into(),
                        },
                        other => other,
                    })?;
                }
                surveys::save_response(c, &response)?;
                if let Some(contact) = response.contact_id {
                    messages::cancel_reminders(c, response.survey_id, contact)?;
                }
                enqueue_event(c, &event)
            },
            move |_| Ok(answer.clone()),
        )
        .await?;
    app.engine.wake(woken);
    Ok(answer)
}

/// Get a response of a survey.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/responses/{responseId}", tag = "responses",
    params(("surveyId" = String, Path), ("responseId" = String, Path)),
    responses((status = 200, body = ResponseView), (status = 404, body = ErrorBody)))]
async fn get_response(
    State(app): State<AppState>,
    ApiPath((survey, response)): ApiPath<(String, String)>,
) -> ApiResult<axum::response::Response> {
    let (survey_id, id): (SurveyId, ResponseId) = (path_id(&survey)?, path_id(&response)?);
    let response = app
        .store
        .read(move |c| surveys::get_response(c, survey_id, id))
        .await?;
    Ok(Json(ResponseView::from(&response)).into_response())
}
