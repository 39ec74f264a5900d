//! Deliveries and their attempts as the API and `hookd deliveries` show them.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::time::{format_ms, format_opt};
use crate::domain::{DeliveryId, EventId, SurveyId, WebhookId};
use crate::store::deliveries::DeliveryStatus;
use crate::store::delivery_log::{Attempt, Delivery};

/// A delivery: where it stands and what its last attempt saw.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub survey_id: SurveyId,
    pub event_id: EventId,
    pub event_type: String,
    /// pending, delivering, succeeded or failed.
    pub status: &'static str,
    pub attempt_count: u32,
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        let pending = d.status == DeliveryStatus::Pending;
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            survey_id: d.survey_id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            status: d.status.as_str(),
            attempt_count: d.attempt_count,
            next_attempt_at: if pending {
                format_opt(d.next_attempt_at)
            } else {
                None
            },
            last_attempt_at: format_opt(d.last_attempt_at),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: format_ms(d.created_at),
            completed_at: format_opt(d.completed_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// What the receiver answered (null if nothing); absent when withheld from a key that
    /// may not see patient data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub response_body: Option<Option<String>>,
    pub response_truncated: bool,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: format_ms(a.started_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error.clone(),
            response_body: Some(a.response_body.clone()),
            response_truncated: a.response_truncated,
        }
    }
}

/// A delivery with the exact body sent and its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The event body sent (null once purged by retention); absent when withheld from a
    /// key that may not see patient data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub attempts: Vec<AttemptView>,
}

impl AttemptView {
    /// The attempt without the receiver's answer, which may quote patient data.
    pub fn withhold_patient_data(&mut self) {
        self.response_body = None;
    }
}

impl DeliveryDetail {
    /// The delivery without its payload and the receiver's answers.
    pub fn withhold_patient_data(&mut self) {
        self.payload = None;
        self.attempts
            .iter_mut()
            .for_each(AttemptView::withhold_patient_data);
    }
}
