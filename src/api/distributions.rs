//! Sending a survey and tracking who answered (SPEC §5): the quick distribution, which
//! gives each contact a personal link, and bulk status, which tells the HIS where each
//! contact stands.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Caller;
use super::body::{Check, Field, small_object};
use super::error::{ApiError, ApiResult, ErrorBody, FieldError};
use super::extract::{ApiPath, Body, QueryMap, path_id};
use super::idempotency::{Answer, Idempotency, unchanged};
use super::surveys::MAX_CONTEXT_BYTES;
use crate::domain::message::{Channel, Template};
use crate::domain::time::{Millis, format_ms, format_opt, now_ms};
use crate::domain::{ContactId, DistributionId, ResponseId, SurveyId};
use crate::store::audit::{self, Entry};
use crate::store::invitations::{self, ContactStatus, NewDistribution};
use crate::store::messages::{self, Plan};
use crate::store::{contacts, surveys};

mod sending;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(quick_distribution))
        .routes(routes!(sending::distribution_status))
        .routes(routes!(bulk_status_get, bulk_status_post))
}

/// Most contacts in one distribution or one bulk-status question.
pub const MAX_CONTACTS: usize = 1000;
/// How long a link stays valid unless `expiresInDays` says otherwise.
const DEFAULT_EXPIRY_DAYS: i64 = 30;
const MAX_EXPIRY_DAYS: i64 = 365;
const DAY_MS: Millis = 86_400_000;

/// The quick distribution body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuickInput {
    /// 1 to 1,000 contact ids; repeats get one invitation.
    #[serde(default)]
    #[schema(value_type = Vec<String>, required)]
    contact_ids: Field<Vec<String>>,
    /// `link` (links only), `email` (needs HOOKD_SMTP_URL) or `sms` (needs HOOKD_SMS_URL).
    #[serde(default)]
    #[schema(value_type = String, required)]
    channel: Field<String>,
    /// Email and SMS: the message, else the channel's default.
    #[serde(default)]
    #[schema(value_type = sending::MessageInput)]
    message: Field<sending::MessageInput>,
    /// Email and SMS: seconds after the invitation at which a reminder goes to each
    /// contact who has neither completed nor seen the link expire; at most 3, each 1 to
    /// 2,592,000, increasing.
    #[serde(default)]
    #[schema(value_type = Vec<i64>)]
    reminders: Field<Vec<i64>>,
    /// 1 to 365 (default 30).
    #[serde(default)]
    #[schema(value_type = i64)]
    expires_in_days: Field<i64>,
    /// Carried into every response made through these links; at most 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    embedded_data: Field<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    contact_id: ContactId,
    /// The respondent's credential, shown only in this answer.
    token: String,
    url: String,
    expires_at: String,
    /// Email and SMS: `queued`, or `skipped` for a contact with doNotContact.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_status: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributionView {
    distribution_id: DistributionId,
    survey_id: SurveyId,
    channel: &'static str,
    invitations: Vec<InvitationView>,
}

/// Send a survey to contacts as personal links.
#[utoipa::path(post, path = "/api/surveys/{surveyId}/distributions/quick", tag = "distributions",
    params(("surveyId" = String, Path)), request_body = QuickInput,
    responses((status = 201, body = DistributionView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn quick_distribution(
    State(app): State<AppState>,
    caller: Caller,
    idempotency: Idempotency,
    ApiPath(survey): ApiPath<String>,
    Body(body): Body<QuickInput>,
) -> ApiResult<Answer> {
    let survey_id: SurveyId = path_id(&survey)?;
    let survey = app.store.survey(survey_id).await?;
    let mut c = Check::new();
    let ids = c.required("contactIds", body.contact_ids, contact_ids);
    let messaging = &app.config.messaging;
    let channel = c.required("channel", body.channel, |name| {
        sending::channel(name, messaging)
    });
    let sends = channel.is_some_and(|ch| ch != Channel::Link);
    let reminders = c
        .optional("reminders", body.reminders, sending::reminders)
        .unwrap_or_default();
    let mut template_errors = Vec::new();
    let template = match (channel, body.message) {
        (Some(Channel::Link), Field::Given(_)) => {
            c.error(
                "message",
                "is for the email and sms channels; link sends nothing",
            );
            None
        }
        (Some(channel), Field::Given(message)) => {
            let parts = message.parts(&mut template_errors);
            match Template::parse(channel, parts) {
                Ok(template) => Some(template),
                Err(errors) => {
                    template_errors.extend(errors.into_iter().map(|(f, m)| FieldError::new(f, m)));
                    None
                }
            }
        }
        (_, Field::Wrong(message)) => {
            c.error("message", message);
            None
        }
        (Some(channel), _) => Some(Template::default_for(channel)),
        (None, _) => None,
    };
    if !reminders.is_empty() && channel == Some(Channel::Link) {
        c.error(
            "reminders",
            "are for the email and sms channels; link sends nothing",
        );
    }
    for error in template_errors {
        c.error(error.field, error.message);
    }
    let days = c
        .optional("expiresInDays", body.expires_in_days, |days| {
            if (1..=MAX_EXPIRY_DAYS).contains(&days) {
                Ok(days)
            } else {
                Err(format!(
                    "must be a whole number from 1 to {MAX_EXPIRY_DAYS}"
                ))
            }
        })
        .unwrap_or(DEFAULT_EXPIRY_DAYS);
    let embedded_data = c
        .optional(
            "embeddedData",
            body.embedded_data,
            small_object(MAX_CONTEXT_BYTES),
        )
        .unwrap_or_default();
    c.finish()?;
    let (ids, channel) = (ids.expect("required"), channel.expect("required"));
    let plan = template.filter(|_| sends).map(|template| Plan {
        channel,
        template,
        reminders,
        survey_title: survey.title.clone(),
        link_base: app.public_url.to_string(),
    });
    let now = now_ms();
    let mut distinct = ids.clone();
    let mut seen = std::collections::HashSet::new();
    distinct.retain(|id| seen.insert(*id));
    let new = NewDistribution {
        survey_id,
        channel: channel.as_str(),
        embedded_data,
        contacts: distinct,
        expires_at: now + days * DAY_MS,
        created_at: now,
        messages: plan,
    };
    let actor = caller.actor;
    let asked = ids.clone();
    let work = move |c: &rusqlite::Connection| {
        let unknown = contacts::unknown(c, &new.contacts)?;
        if !unknown.is_empty() {
            return Ok(Err(Refused::Unknown(unknown)));
        }
        let recipients = match &new.messages {
            Some(plan) => {
                let recipients = messages::recipients(c, &new.contacts)?;
                let unreachable = sending::reachable(plan, &asked, &recipients, new.expires_at);
                if !unreachable.is_empty() {
                    return Ok(Err(Refused::Unreachable(unreachable)));
                }
                recipients
            }
            None => HashMap::new(),
        };
        let (id, issued) = invitations::create_distribution(c, &new, &recipients)?;
        let entry = Entry {
            actor: &actor,
            action: "distribution.created",
            target_type: "distribution",
            target_id: id.to_string(),
            detail: json!({
                "surveyId": survey_id, "channel": channel.as_str(), "invitations": issued.len()
            }),
        };
        audit::record(c, &entry, now)?;
        Ok(Ok((id, issued)))
    };
    let public_url = app.public_url.clone();
    let render = move |outcome: &Result<(DistributionId, Vec<invitations::Issued>), Refused>| {
        let (distribution_id, issued) = outcome.as_ref().map_err(|refused| match refused {
            Refused::Unknown(unknown) => unknown_contacts(&ids, unknown),
            Refused::Unreachable(errors) => ApiError::Validation(errors.clone()),
        })?;
        let invitations = issued
            .iter()
            .map(|i| InvitationView {
                contact_id: i.contact_id,
                url: format!("{public_url}/r/{}", i.token),
                token: i.token.clone(),
                expires_at: format_ms(i.expires_at),
                message_status: i.message_status,
            })
            .collect();
        let view = DistributionView {
            distribution_id: *distribution_id,
            survey_id,
            channel: channel.as_str(),
            invitations,
        };
        Ok(Answer::json(StatusCode::CREATED, &view))
    };
    let (outcome, answer) = idempotency.write(&app.store, work, render).await?;
    if outcome.is_ok() {
        app.engine
            .wake(messages::queue_of(channel).into_iter().collect());
    }
    Ok(answer)
}

/// Why a distribution was not written.
#[derive(Debug, Clone)]
enum Refused {
    /// Contacts that do not exist.
    Unknown(Vec<ContactId>),
    /// Contacts the channel cannot reach, or an SMS too long.
    Unreachable(Vec<FieldError>),
}

/// Names each unknown contact by its place in the body's `contactIds`.
fn unknown_contacts(ids: &[ContactId], unknown: &[ContactId]) -> ApiError {
    let index: HashMap<ContactId, usize> = ids
        .iter()
        .enumerate()
        .rev()
        .map(|(i, id)| (*id, i))
        .collect();
    ApiError::Validation(
        unknown
            .iter()
            .map(|id| {
                FieldError::new(
                    format!("contactIds[{}]", index[id]),
                    format!("{id} is not a known contact"),
                )
            })
            .collect(),
    )
}

/// 1 to 1,000 contact ids; a bad one is named by its index.
fn contact_ids(values: Vec<String>) -> Result<Vec<ContactId>, String> {
    if values.is_empty() || values.len() > MAX_CONTACTS {
        return Err(format!("must have 1 to {MAX_CONTACTS} contact ids"));
    }
    let mut ids = Vec::with_capacity(values.len());
    let mut bad = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value.trim().parse().ok() {
            Some(id) => ids.push(id),
            None => bad.push(i.to_string()),
        }
    }
    if bad.is_empty() {
        Ok(ids)
    } else {
        Err(format!("items {} are not contact ids", bad.join(", ")))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    contact_id: ContactId,
    /// `not_invited`, `invited`, `started` or `completed`.
    status: &'static str,
    /// The latest invitation to this survey.
    invited_at: Option<String>,
    /// When that invitation's link stops working.
    expires_at: Option<String>,
    started_at: Option<String>,
    completed_at: Option<String>,
    response_id: Option<ResponseId>,
    /// The latest message sent or due (`queued`, `sent`, `failed`, `skipped`,
    /// `cancelled`); null when the contact was never sent one.
    message_status: Option<&'static str>,
}

impl From<ContactStatus> for StatusView {
    fn from(s: ContactStatus) -> Self {
        let status = match (&s.response, s.invited_at) {
            (Some(r), _) if r.completed => "completed",
            (Some(_), _) => "started",
            (None, Some(_)) => "invited",
            (None, None) => "not_invited",
        };
        Self {
            contact_id: s.contact_id,
            status,
            invited_at: format_opt(s.invited_at),
            expires_at: format_opt(s.expires_at),
            started_at: s.response.as_ref().map(|r| format_ms(r.started_at)),
            completed_at: s.response.as_ref().and_then(|r| format_opt(r.completed_at)),
            response_id: s.response.map(|r| r.id),
            message_status: s.message_status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkStatusView {
    items: Vec<StatusView>,
}

/// The bulk status body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkStatusInput {
    /// 1 to 1,000 contact ids.
    #[serde(default)]
    #[schema(value_type = Vec<String>, required)]
    contact_ids: Field<Vec<String>>,
}

/// Where each contact stands with the survey, in the order asked.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/responses/bulk-status", tag = "responses",
    params(("surveyId" = String, Path),
        ("contactIds" = String, Query, description = "comma-separated, 1 to 1,000")),
    responses((status = 200, body = BulkStatusView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn bulk_status_get(
    State(app): State<AppState>,
    ApiPath(survey): ApiPath<String>,
    query: QueryMap,
) -> ApiResult<Json<BulkStatusView>> {
    let survey_id: SurveyId = path_id(&survey)?;
    let list = query.0.get("contactIds").map(String::as_str).unwrap_or("");
    let values: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let ids = contact_ids(values).map_err(|m| ApiError::field("contactIds", m))?;
    bulk_status(app, survey_id, ids).await
}

/// Where each contact stands with the survey, in the order asked (ids in the body).
#[utoipa::path(post, path = "/api/surveys/{surveyId}/responses/bulk-status", tag = "responses",
    params(("surveyId" = String, Path)), request_body = BulkStatusInput,
    responses((status = 200, body = BulkStatusView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn bulk_status_post(
    State(app): State<AppState>,
    ApiPath(survey): ApiPath<String>,
    Body(body): Body<BulkStatusInput>,
) -> ApiResult<Response> {
    let survey_id: SurveyId = path_id(&survey)?;
    let mut c = Check::new();
    let ids = c.required("contactIds", body.contact_ids, contact_ids);
    c.finish()?;
    let view = bulk_status(app, survey_id, ids.expect("required")).await?;
    Ok(unchanged(view))
}

async fn bulk_status(
    app: AppState,
    survey_id: SurveyId,
    ids: Vec<ContactId>,
) -> ApiResult<Json<BulkStatusView>> {
    let rows = app
        .store
        .read(move |c| {
            surveys::require(c, survey_id)?;
            invitations::bulk_status(c, survey_id, &ids, now_ms())
        })
        .await?;
    Ok(Json(BulkStatusView {
        items: rows.into_iter().map(StatusView::from).collect(),
    }))
}
