//! The delivery queue per webhook: `GET /api/admin/queue`, `hookd status` and the
//! operator page read the same document.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::time::{Millis, format_ms, format_opt};
use crate::domain::{SurveyId, WebhookId};
use crate::store::WriterMinute;
use crate::store::overview::{StatusCounts, WebhookState, WebhookSummary};

/// Deliveries by status.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct CountsView {
    pub pending: u64,
    pub delivering: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl From<StatusCounts> for CountsView {
    fn from(c: StatusCounts) -> Self {
        Self {
            pending: c.pending,
            delivering: c.delivering,
            succeeded: c.succeeded,
            failed: c.failed,
        }
    }
}

/// One webhook in the queue summary.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookQueueView {
    pub webhook_id: WebhookId,
    pub survey_id: SurveyId,
    pub name: String,
    pub url: String,
    /// `active`, `disabled` (by hookd: failures or 410) or `inactive` (by an operator).
    pub state: &'static str,
    /// `concurrent` or `fifo` (one attempt at a time, in event order).
    pub ordering: &'static str,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// Deliveries that ended `failed` since the last success.
    pub consecutive_failures: u32,
    /// The streak when hookd disabled the webhook. Deliveries already in flight then still
    /// end, and each that fails counts, so `consecutiveFailures` can be higher.
    pub failures_when_disabled: Option<u32>,
    pub counts: CountsView,
    /// Creation time of the oldest pending or delivering delivery.
    pub oldest_pending_at: Option<String>,
    pub oldest_pending_age_seconds: Option<u64>,
    /// When the next pending delivery falls due (it waits while the webhook is off).
    pub next_attempt_at: Option<String>,
    /// Claims past their lease: attempts that will never report, released and attempted
    /// again by the engine's next sweep.
    pub expired_claims: u64,
}

/// A message channel's jobs (SPEC §10).
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct ChannelView {
    /// Waiting to be sent, being sent, or waiting for a retry or a reminder's time.
    pub queued: u64,
    pub sent: u64,
    pub failed: u64,
}

impl From<StatusCounts> for ChannelView {
    fn from(c: StatusCounts) -> Self {
        Self {
            queued: c.pending + c.delivering,
            sent: c.succeeded,
            failed: c.failed,
        }
    }
}

/// The messages of each configured channel (a channel never configured is absent).
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq, Eq)]
pub struct MessagesView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<ChannelView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<ChannelView>,
}

/// The delivery queue per webhook, disabled webhooks first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub generated_at: String,
    pub totals: CountsView,
    /// Webhooks disabled by hookd (failures or 410).
    pub disabled_webhooks: u64,
    pub oldest_pending_age_seconds: Option<u64>,
    /// Claims past their lease, all webhooks together.
    pub expired_claims: u64,
    /// Emails and SMS (SPEC §10): the jobs of the channels' queues, which are also listed
    /// in `webhooks` under their reserved ids.
    pub messages: MessagesView,
    pub webhooks: Vec<WebhookQueueView>,
    /// The store writer's group commits of the last minute: how many, how full, how long.
    /// Only a running server knows it (absent from `hookd status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer: Option<WriterMinute>,
}

fn age_seconds(at: Millis, now: Millis) -> u64 {
    u64::try_from((now - at).max(0) / 1000).unwrap_or(0)
}

impl QueueView {
    pub fn new(rows: &[WebhookSummary], now: Millis) -> Self {
        let mut totals = CountsView::default();
        for row in rows {
            totals.pending += row.counts.pending;
            totals.delivering += row.counts.delivering;
            totals.succeeded += row.counts.succeeded;
            totals.failed += row.counts.failed;
        }
        let webhooks: Vec<WebhookQueueView> = rows
            .iter()
            .map(|row| WebhookQueueView {
                webhook_id: row.webhook_id,
                survey_id: row.survey_id,
                name: row.name.clone(),
                url: row.url.clone(),
                state: row.state.as_str(),
                ordering: row.ordering.as_str(),
                disabled_at: format_opt(row.disabled_at),
                disabled_reason: row.disabled_reason.clone(),
                consecutive_failures: row.consecutive_failures,
                failures_when_disabled: row.failures_when_disabled,
                counts: row.counts.into(),
                oldest_pending_at: format_opt(row.oldest_pending_at),
                oldest_pending_age_seconds: row.oldest_pending_at.map(|at| age_seconds(at, now)),
                next_attempt_at: format_opt(row.next_attempt_at),
                expired_claims: row.expired_claims,
            })
            .collect();
        let channel = |id: WebhookId| {
            rows.iter()
                .find(|r| r.webhook_id == id)
                .map(|r| ChannelView::from(r.counts))
        };
        Self {
            generated_at: format_ms(now),
            totals,
            messages: MessagesView {
                email: channel(WebhookId::EMAIL),
                sms: channel(WebhookId::SMS),
            },
            disabled_webhooks: rows
                .iter()
                .filter(|r| r.state == WebhookState::Disabled)
                .count() as u64,
            oldest_pending_age_seconds: webhooks
                .iter()
                .filter_map(|w| w.oldest_pending_age_seconds)
                .max(),
            expired_claims: rows.iter().map(|r| r.expired_claims).sum(),
            webhooks,
            writer: None,
        }
    }
    /// The summary with the writer's last minute, as a running server knows it.
    pub fn with_writer(mut self, writer: WriterMinute) -> Self {
        self.writer = Some(writer);
        self
    }
}
