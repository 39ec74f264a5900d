//! A webhook as the API and `hookd webhooks` show it.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::time::format_ms;
use crate::domain::{SurveyId, WebhookId};
use crate::store::webhooks::Webhook;

/// A webhook as the API shows it. The secret itself is never shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: WebhookId,
    pub survey_id: SurveyId,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub has_secret: bool,
    pub headers: BTreeMap<String, String>,
    pub is_active: bool,
    pub retry_policy: Vec<u32>,
    /// `concurrent` or `fifo`.
    pub ordering: String,
    pub consecutive_failures: u32,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id,
            survey_id: w.survey_id,
            name: w.name.clone(),
            url: w.url.clone(),
            events: w.events.iter().map(|e| e.as_str().to_owned()).collect(),
            has_secret: w.secret.is_some(),
            headers: w.headers.as_map().clone(),
            is_active: w.is_active,
            retry_policy: w.retry_policy.delays().to_vec(),
            ordering: w.ordering.as_str().to_owned(),
            consecutive_failures: w.consecutive_failures,
            disabled_at: w.disabled_at.map(format_ms),
            disabled_reason: w.disabled_reason.clone(),
            created_at: format_ms(w.created_at),
            updated_at: format_ms(w.updated_at),
        }
    }
}
