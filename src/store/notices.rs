//! The operations channel (SPEC §8): when a webhook is disabled or re-enabled, an
//! operational event goes to `HOOKD_OPS_WEBHOOK_URL`.
//!
//! It rides on the delivery queue like any survey event — durable, signed, retried, through
//! the SSRF rule — to a webhook row of its own ([`WebhookId::OPERATIONS`], under the reserved
//! survey [`SurveyId::OPERATIONS`] that the API never shows). The notice is written in the
//! transaction of the change that causes it, so it is owed exactly when the change happened.
//! Its body is built here rather than in `events`, since it is written from deep inside
//! the store (an attempt's record disables a webhook).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::Result;
use super::deliveries::{NewEvent, insert_delivery};
use super::webhooks::Webhook;
use crate::domain::time::{Millis, format_ms};
use crate::domain::{EventId, EventType, RetryPolicy, Secret, SurveyId, WebhookId, WebhookUrl};

/// What happened to a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Disabled,
    Enabled,
}

/// The channels a change queued notices to, whose actors are to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notices {
    /// A `webhook.disabled`/`webhook.enabled` event to `HOOKD_OPS_WEBHOOK_URL`.
    pub operations: bool,
    /// An email to `HOOKD_ADMIN_EMAIL`.
    pub email: bool,
}

impl Notices {
    pub fn merge(self, other: Self) -> Self {
        Self {
            operations: self.operations || other.operations,
            email: self.email || other.email,
        }
    }

    /// The queues to wake.
    pub fn queues(self) -> impl Iterator<Item = WebhookId> {
        [
            self.operations.then_some(WebhookId::OPERATIONS),
            self.email.then_some(WebhookId::EMAIL),
        ]
        .into_iter()
        .flatten()
    }
}

/// Brings the operations webhook in line with the configuration at start-up: registered
/// (and active) with this URL and secret, or, without a URL, inactive (notices owed to it
/// wait, paused, and none are added).
pub fn configure(
    conn: &Connection,
    endpoint: Option<(&WebhookUrl, Option<&Secret>)>,
    now: Millis,
) -> Result<()> {
    let Some((url, secret)) = endpoint else {
        return switch_off(conn, WebhookId::OPERATIONS, now);
    };
    reserve_survey(conn, now)?;
    let policy = super::to_json(RetryPolicy::default().delays());
    conn.execute(
        "INSERT INTO webhooks (id, survey_id, name, url, events, secret, headers, is_active, \
         retry_policy, created_at, updated_at) \
         VALUES (?1, ?1, 'operations (HOOKD_OPS_WEBHOOK_URL)', ?2, '[]', ?3, '{}', 1, ?4, ?5, ?5) \
         ON CONFLICT (id) DO UPDATE SET url = ?2, secret = ?3, is_active = 1, retry_policy = ?4, \
         disabled_at = NULL, disabled_reason = NULL, failures_when_disabled = NULL, updated_at = ?5",
        params![
            WebhookId::OPERATIONS,
            url.as_str(),
            secret.map(Secret::expose),
            policy,
            now
        ],
    )?;
    Ok(())
}

/// Switches one of hookd's own channels off: what is owed to it waits, paused.
pub(super) fn switch_off(conn: &Connection, queue: WebhookId, now: Millis) -> Result<()> {
    conn.execute(
        "UPDATE webhooks SET is_active = 0, updated_at = ?2 WHERE id = ?1 AND is_active = 1",
        params![queue, now],
    )?;
    Ok(())
}

/// The reserved survey hookd's own channels belong to (never shown by the API).
pub(super) fn reserve_survey(conn: &Connection, now: Millis) -> Result<()> {
    conn.execute(
        "INSERT INTO surveys (id, title, questions, created_at) VALUES (?1, 'hookd operations', '[]', ?2) \
         ON CONFLICT (id) DO NOTHING",
        params![SurveyId::OPERATIONS, now],
    )?;
    Ok(())
}

/// Queues the notices of a change to `webhook` (as it is after the change): an event to
/// the operations channel when it is configured, and for a disable an email to the admins
/// when they are; `reason` is the disabled reason, or who re-enabled it (`api`, `cli`).
/// hookd's own channels say nothing of themselves.
pub fn webhook_changed(
    conn: &Connection,
    webhook: &Webhook,
    change: Change,
    reason: &str,
    now: Millis,
) -> Result<Notices> {
    if !webhook.id.queue().may_be_disabled() {
        return Ok(Notices::default());
    }
    let email =
        change == Change::Disabled && super::messages::admin_notice(conn, webhook, reason, now)?;
    let operations = is_active(conn, WebhookId::OPERATIONS)?;
    if operations {
        operations_event(conn, webhook, change, reason, now)?;
    }
    Ok(Notices { operations, email })
}

/// Whether one of hookd's own channels is configured (its row active).
pub(super) fn is_active(conn: &Connection, queue: WebhookId) -> Result<bool> {
    let active: Option<bool> = conn
        .prepare_cached("SELECT is_active FROM webhooks WHERE id = ?1")?
        .query_row([queue], |row| row.get(0))
        .optional()?;
    Ok(active == Some(true))
}

/// The operations channel's `webhook.disabled`/`webhook.enabled` event.
fn operations_event(
    conn: &Connection,
    webhook: &Webhook,
    change: Change,
    reason: &str,
    now: Millis,
) -> Result<()> {
    let event_type = match change {
        Change::Disabled => EventType::WebhookDisabled,
        Change::Enabled => EventType::WebhookEnabled,
    };
    let id = EventId::new();
    let body = json!({
        "eventType": event_type.as_str(),
        "eventId": id,
        "timestamp": format_ms(now),
        "data": {
            "webhookId": webhook.id,
            "surveyId": webhook.survey_id,
            "name": webhook.name,
            "url": webhook.url,
            "reason": reason,
            "consecutiveFailures": webhook.consecutive_failures,
            "at": format_ms(now),
        },
    });
    let event = NewEvent {
        id,
        survey_id: SurveyId::OPERATIONS,
        event_type,
        payload: body.to_string(),
        created_at: now,
    };
    super::deliveries::insert_event(conn, &event)?;
    insert_delivery(conn, WebhookId::OPERATIONS, &event, false, None)?;
    Ok(())
}
