//! Respondent routes (SPEC §5): `GET /r/{token}` and `POST /r/{token}`, outside `/api` and
//! without an API key — the invitation's token is the credential. API clients get JSON; a
//! browser (`Accept: text/html`) gets the patient's page, which saves and completes
//! through the same `POST`.
//!
//! A save and the events it causes (`survey.response_started` on the first save,
//! `survey.response_completed` on completion) are one store transaction, and the "already
//! completed?" check runs inside it, so two racing completions cannot both emit.

mod page;

use axum::Json;
use axum::extract::State;
use axum::http::header::{self, HeaderMap};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use self::page::{no_store, page};
use super::AppState;
use super::body::{Check, Field, response_context};
use super::error::{ApiError, ApiResult, ErrorBody, FieldError};
use super::extract::{ApiPath, Body};
use super::idempotency::{Answer, Idempotency};
use super::surveys::MAX_CONTEXT_BYTES;
use crate::domain::survey::{Completeness, Question, validate_answers};
use crate::domain::time::{Millis, format_ms, format_opt, now_ms};
use crate::domain::{ResponseId, SurveyId, WebhookId};
use crate::events;
use crate::store::StoreError;
use crate::store::deliveries::enqueue_event;
use crate::store::invitations::{self, Invitation};
use crate::store::messages;
use crate::store::surveys::{self, Response as StoredResponse, Survey};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, save))
}

/// Tokens are 43 base64url characters; anything much longer is not worth a query.
const MAX_TOKEN_LEN: usize = 128;

/// The survey to answer, as far as the respondent may see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SurveyForm {
    id: SurveyId,
    title: String,
    #[schema(value_type = Vec<Object>)]
    questions: Vec<Question>,
}

/// The state of the respondent's response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavedView {
    /// `not_started`, `started` or `completed`.
    status: &'static str,
    response_id: Option<ResponseId>,
    /// The answers saved so far, in the event's shape.
    #[schema(value_type = Object)]
    answers: Map<String, Value>,
    started_at: Option<String>,
    completed_at: Option<String>,
}

impl SavedView {
    fn of(response: Option<&StoredResponse>) -> Self {
        let Some(r) = response else {
            return Self {
                status: "not_started",
                response_id: None,
                answers: Map::new(),
                started_at: None,
                completed_at: None,
            };
        };
        Self {
            status: if r.completed { "completed" } else { "started" },
            response_id: Some(r.id),
            answers: r.answers.clone(),
            started_at: Some(format_ms(r.started_at)),
            completed_at: format_opt(r.completed_at),
        }
    }
}

/// What `GET /r/{token}` answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RespondentView {
    survey: SurveyForm,
    /// When the link stops working.
    expires_at: String,
    #[serde(flatten)]
    saved: SavedView,
}

/// The body of a save.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaveInput {
    /// `{"<questionId>": {"value": ..}}` or `{"<questionId>": {"choiceIds": [..]}}`; merged
    /// into the answers saved before; `null` clears a saved answer.
    #[serde(default)]
    #[schema(value_type = Object, required)]
    answers: Field<Map<String, Value>>,
    /// Merged into the response's; the distribution's own embedded data wins. At most
    /// 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    embedded_data: Field<Map<String, Value>>,
    /// Merged into the response's. At most 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Field<Map<String, Value>>,
    /// `false`: save for later; `true`: complete (every required question answered).
    #[serde(default)]
    #[schema(value_type = bool, required)]
    complete: Field<bool>,
}

/// The survey behind a link, with the answers saved so far (JSON, or the patient's page
/// for `Accept: text/html`).
#[utoipa::path(get, path = "/r/{token}", tag = "respondents", security(()),
    params(("token" = String, Path, description = "the invitation's token")),
    responses((status = 200, description = "the survey and the answers saved so far, or the \
            patient's page for `Accept: text/html`",
            content((RespondentView = "application/json"), (String = "text/html"))),
        (status = 404, description = "unknown or expired link", body = ErrorBody)))]
async fn show(
    State(app): State<AppState>,
    ApiPath(token): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    let html = wants_html(&headers);
    let view = load(&app, token).await;
    match (view, html) {
        (Ok(view), false) => no_store(Json(view).into_response()),
        (Ok(view), true) => page(StatusCode::OK, &json!({"view": "form", "data": view})),
        (Err(ApiError::NotFound), true) => page(StatusCode::NOT_FOUND, &json!({"view": "gone"})),
        (Err(error), _) => error.into_response(),
    }
}

async fn load(app: &AppState, token: String) -> ApiResult<RespondentView> {
    if !plausible(&token) {
        return Err(ApiError::NotFound);
    }
    let (invitation, survey, response) = app
        .store
        .read(move |c| {
            let invitation = invitations::find_live(c, &token, now_ms())?;
            let survey = surveys::get(c, invitation.survey_id)?;
            let response = surveys::response_for_invitation(c, invitation.id)?;
            Ok((invitation, survey, response))
        })
        .await?;
    Ok(RespondentView {
        survey: SurveyForm {
            id: survey.id,
            title: survey.title,
            questions: survey.questions,
        },
        expires_at: format_ms(invitation.expires_at),
        saved: SavedView::of(response.as_ref()),
    })
}

/// What a save did inside its transaction.
enum Saved {
    Done(StoredResponse, Vec<WebhookId>),
    /// The answers are not valid for the survey; nothing was written.
    Rejected(Vec<(String, String)>),
}

/// Save the answers for later (`complete: false`) or complete the response.
#[utoipa::path(post, path = "/r/{token}", tag = "respondents", security(()),
    params(("token" = String, Path, description = "the invitation's token")), request_body = SaveInput,
    responses((status = 200, body = SavedView), (status = 400, body = ErrorBody),
        (status = 404, description = "unknown or expired link", body = ErrorBody),
        (status = 409, description = "already_completed", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn save(
    State(app): State<AppState>,
    idempotency: Idempotency,
    ApiPath(token): ApiPath<String>,
    Body(body): Body<SaveInput>,
) -> ApiResult<Response> {
    if !plausible(&token) {
        return Err(ApiError::NotFound);
    }
    // A dead link is a 404 whatever the body holds; the write below checks it again.
    let probe = token.clone();
    app.store
        .read(move |c| invitations::find_live(c, &probe, now_ms()).map(drop))
        .await?;
    let mut c = Check::new();
    let answers = c.required("answers", body.answers, Ok);
    let (embedded_data, metadata) =
        response_context(&mut c, body.embedded_data, body.metadata, MAX_CONTEXT_BYTES);
    let complete = c.required("complete", body.complete, Ok);
    c.finish()?;
    let input = Input {
        answers: answers.expect("required"),
        embedded_data,
        metadata,
        completeness: if complete.expect("required") {
            Completeness::Complete
        } else {
            Completeness::Partial
        },
    };
    let work = move |c: &rusqlite::Connection| {
        let now = now_ms();
        let invitation = invitations::find_live(c, &token, now)?;
        let survey = surveys::get(c, invitation.survey_id)?;
        let existing = surveys::response_for_invitation(c, invitation.id)?;
        if existing.as_ref().is_some_and(|r| r.completed) {
            return Err(StoreError::Conflict {
                code: "already_completed",
                message: "this response has already been completed".into(),
            });
        }
        let response = match next_state(&survey, &invitation, existing.as_ref(), &input, now) {
            Ok(response) => response,
            Err(errors) => return Ok(Saved::Rejected(errors)),
        };
        surveys::save_response(c, &response)?;
        let mut woken = Vec::new();
        if existing.is_none() {
            woken.extend(enqueue_event(c, &events::response_started(&response, now))?);
        }
        if response.completed {
            woken.extend(enqueue_event(
                c,
                &events::response_completed(&response, now),
            )?);
            messages::cancel_reminders(c, invitation.survey_id, invitation.contact_id)?;
        }
        Ok(Saved::Done(response, woken))
    };
    let render = |outcome: &Saved| match outcome {
        Saved::Rejected(errors) => Err(ApiError::Validation(
            errors
                .iter()
                .map(|(field, message)| FieldError::new(field, message))
                .collect(),
        )),
        Saved::Done(response, _) => {
            Ok(Answer::json(StatusCode::OK, &SavedView::of(Some(response))))
        }
    };
    let (outcome, answer) = idempotency.write(&app.store, work, render).await?;
    if let Saved::Done(_, mut woken) = outcome {
        woken.sort();
        woken.dedup();
        app.engine.wake(woken);
    }
    Ok(no_store(answer.into_response()))
}

/// A save as sent, once its fields are read.
struct Input {
    answers: Map<String, Value>,
    embedded_data: Map<String, Value>,
    metadata: Map<String, Value>,
    completeness: Completeness,
}

/// The response after this save: answers merged into those saved before and validated
/// (a `null` answer to a question of the survey clears it), embedded data and metadata
/// merged. The distribution's embedded data wins over the respondent's, so a link holder
/// cannot alter what the HIS put there.
fn next_state(
    survey: &Survey,
    invitation: &Invitation,
    existing: Option<&StoredResponse>,
    input: &Input,
    now: Millis,
) -> Result<StoredResponse, Vec<(String, String)>> {
    let mut answers = existing.map(|r| r.answers.clone()).unwrap_or_default();
    for (id, answer) in &input.answers {
        if answer.is_null() && survey.questions.iter().any(|q| &q.id == id) {
            answers.remove(id);
        } else {
            answers.insert(id.clone(), answer.clone());
        }
    }
    let answers = validate_answers(&survey.questions, &answers, input.completeness)?;
    let mut embedded_data = existing
        .map(|r| r.embedded_data.clone())
        .unwrap_or_default();
    embedded_data.extend(input.embedded_data.clone());
    embedded_data.extend(invitation.embedded_data.clone());
    let mut metadata = existing.map(|r| r.metadata.clone()).unwrap_or_default();
    metadata.extend(input.metadata.clone());
    let completed = input.completeness == Completeness::Complete;
    Ok(StoredResponse {
        id: existing.map(|r| r.id).unwrap_or_default(),
        survey_id: invitation.survey_id,
        contact_id: Some(invitation.contact_id),
        invitation_id: Some(invitation.id),
        completed,
        answers,
        embedded_data,
        metadata,
        started_at: existing.map_or(now, |r| r.started_at),
        completed_at: completed.then_some(now),
    })
}

/// A token hookd could have made: base64url characters, not absurdly long.
fn plausible(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Browsers ask for HTML first; API clients (`*/*`, `application/json`) get JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The request span of the HTTP trace layer: method and path only. The path of a link
/// holds its token (a credential) and a query may hold a patient's name (`?q=`), so
/// neither reaches the logs.
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let path = if path.starts_with("/r/") {
        "/r/{token}"
    } else {
        path
    };
    tracing::debug_span!("request", method = %request.method(), path = %path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64url_tokens_of_sane_length_are_looked_up() {
        assert!(plausible("abcDEF-_0123"));
        assert!(!plausible(""));
        assert!(!plausible("abc/def"));
        assert!(!plausible(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }
}
