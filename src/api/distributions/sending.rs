//! The sending side of a distribution (SPEC §10): its channel, message template and
//! reminders as the body gives them, the check that every contact can be reached, and the
//! status endpoint that tells where each message stands.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::AppState;
use super::super::body::{Field, Wire, nested};
use super::super::error::{ApiError, ApiResult, ErrorBody, FieldError};
use super::super::extract::{ApiPath, path_id};
use crate::config::Messaging;
use crate::domain::message::{Channel, MAX_SMS_CHARS, TemplateInput};
use crate::domain::time::{Millis, format_ms, format_opt};
use crate::domain::{ContactId, DeliveryId, DistributionId, SurveyId};
use crate::store::messages::{DistributionState, Plan, Recipient};

/// At most this many reminders, each at most 30 days after the invitation.
const MAX_REMINDERS: usize = 3;
const MAX_REMINDER_SECONDS: i64 = 2_592_000;

/// The message of an email or SMS distribution; every part optional (the channel's
/// default is used). Placeholders: `{{firstName}}`, `{{lastName}}`, `{{surveyTitle}}`,
/// `{{link}}`, `{{expiresAt}}`; values are HTML-escaped in `html`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageInput {
    /// Email only; one line, at most 200 characters.
    #[serde(default)]
    #[schema(value_type = String)]
    subject: Field<String>,
    /// Must contain `{{link}}`. An SMS is at most 640 characters once filled in.
    #[serde(default)]
    #[schema(value_type = String)]
    text: Field<String>,
    /// Email only; must contain `{{link}}`.
    #[serde(default)]
    #[schema(value_type = String)]
    html: Field<String>,
}

impl Wire for MessageInput {
    fn from_json(value: serde_json::Value) -> Result<Self, String> {
        nested(value)
    }
}

impl MessageInput {
    /// The parts as given; a part of the wrong type is reported by its field.
    pub fn parts(self, errors: &mut Vec<FieldError>) -> TemplateInput {
        let mut part = |name: &str, field: Field<String>| match field {
            Field::Absent | Field::Null => None,
            Field::Given(text) => Some(text),
            Field::Wrong(message) => {
                errors.push(FieldError::new(format!("message.{name}"), message));
                None
            }
        };
        TemplateInput {
            subject: part("subject", self.subject),
            text: part("text", self.text),
            html: part("html", self.html),
        }
    }
}

/// A distribution's channel, if this server can send by it.
pub fn channel(name: String, messaging: &Messaging) -> Result<Channel, String> {
    match Channel::parse(&name) {
        Some(Channel::Email) if messaging.mail.is_none() => Err(
            "email needs a mail server (HOOKD_SMTP_URL), and none is configured; use link or sms"
                .into(),
        ),
        Some(Channel::Sms) if messaging.sms.is_none() => Err(
            "sms needs an SMS gateway (HOOKD_SMS_URL), and none is configured; use link or email"
                .into(),
        ),
        Some(channel) => Ok(channel),
        None => Err("must be link, email or sms".into()),
    }
}

/// Reminder delays in seconds: at most three, each 1 to 2,592,000, increasing; in
/// milliseconds.
pub fn reminders(values: Vec<i64>) -> Result<Vec<Millis>, String> {
    if values.len() > MAX_REMINDERS {
        return Err(format!("must have at most {MAX_REMINDERS} reminders"));
    }
    if values
        .iter()
        .any(|s| !(1..=MAX_REMINDER_SECONDS).contains(s))
    {
        return Err(format!(
            "each must be a whole number of seconds from 1 to {MAX_REMINDER_SECONDS}"
        ));
    }
    if values.windows(2).any(|w| w[0] >= w[1]) {
        return Err("must be increasing".into());
    }
    Ok(values.into_iter().map(|s| s * 1000).collect())
}

/// Every contact can be reached by the plan's channel (a contact with `doNotContact` is
/// not sent anything, so needs no address), and no SMS is too long once filled in;
/// contacts are named by their place in the body's `contactIds`.
pub fn reachable(
    plan: &Plan,
    asked: &[ContactId],
    recipients: &HashMap<ContactId, Recipient>,
    expires_at: Millis,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, id) in asked.iter().enumerate() {
        let Some(recipient) = recipients.get(id) else {
            continue;
        };
        if recipient.do_not_contact || !seen.insert(*id) {
            continue;
        }
        let field = format!("contactIds[{i}]");
        if recipient.address(plan.channel).is_none() {
            let what = match plan.channel {
                Channel::Sms => "a phone number",
                _ => "an email address",
            };
            errors.push(FieldError::new(
                field,
                format!(
                    "{id} has no {what}, which the {} channel needs",
                    plan.channel.as_str()
                ),
            ));
        } else if let Some(n) = plan.overlong_sms(recipient, expires_at) {
            errors.push(FieldError::new(
                "message.text",
                format!(
                    "is {n} characters once filled in for {field}; an SMS may have at most {MAX_SMS_CHARS}"
                ),
            ));
        }
    }
    errors
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    id: DeliveryId,
    /// `invitation` or `reminder`.
    kind: String,
    /// `queued`, `sent`, `failed`, `skipped` (the contact has doNotContact) or `cancelled`
    /// (a reminder after completion or expiry).
    status: &'static str,
    attempts: u32,
    /// The mail server's or gateway's answer to the last failed attempt.
    last_error: Option<String>,
    sent_at: Option<String>,
    /// When it is (or was) due: a reminder's time.
    due_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationMessagesView {
    contact_id: ContactId,
    expires_at: String,
    messages: Vec<MessageView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistributionStatusView {
    distribution_id: DistributionId,
    survey_id: SurveyId,
    channel: String,
    created_at: String,
    invitations: Vec<InvitationMessagesView>,
}

impl From<DistributionState> for DistributionStatusView {
    fn from(d: DistributionState) -> Self {
        Self {
            distribution_id: d.id,
            survey_id: d.survey_id,
            channel: d.channel,
            created_at: format_ms(d.created_at),
            invitations: d
                .invitations
                .into_iter()
                .map(|i| InvitationMessagesView {
                    contact_id: i.contact_id,
                    expires_at: format_ms(i.expires_at),
                    messages: i
                        .messages
                        .into_iter()
                        .map(|m| MessageView {
                            id: m.id,
                            kind: m.kind,
                            status: m.status,
                            attempts: m.attempts,
                            last_error: m.last_error,
                            sent_at: format_opt(m.sent_at),
                            due_at: format_ms(m.due_at),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A distribution and where each of its messages stands.
#[utoipa::path(get, path = "/api/surveys/{surveyId}/distributions/{distributionId}",
    tag = "distributions",
    params(("surveyId" = String, Path), ("distributionId" = String, Path)),
    responses((status = 200, body = DistributionStatusView), (status = 404, body = ErrorBody)))]
pub async fn distribution_status(
    State(app): State<AppState>,
    ApiPath((survey, distribution)): ApiPath<(String, String)>,
) -> ApiResult<Json<DistributionStatusView>> {
    let survey_id: SurveyId = path_id(&survey)?;
    let id: DistributionId = path_id(&distribution).map_err(|_| ApiError::NotFound)?;
    let state = app
        .store
        .read(move |c| crate::store::messages::distribution(c, survey_id, id))
        .await?;
    Ok(Json(state.into()))
}
