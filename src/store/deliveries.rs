//! Events, deliveries and attempts: the durable queue the delivery engine works from.
//!
//! The life of a delivery in SQL: [`enqueue_event`] writes it `pending`; the webhook's
//! actor [`claim_due`]s it (`delivering`, under a lease); [`record_attempt`] writes the
//! attempt and moves it to `succeeded`, `failed` or back to `pending` with its next time.
//! A claim left by a dead process is released at start-up ([`release_claims`]), so an
//! attempt in flight during a crash is made again.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use super::webhooks::{self, Webhook};
use crate::domain::time::Millis;
use crate::domain::{DeliveryId, EventId, EventType, SurveyId, WebhookId};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [Self; 4] = [
        Self::Pending,
        Self::Delivering,
        Self::Succeeded,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// An event to store, with the exact bytes every delivery of it will send.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub survey_id: SurveyId,
    pub event_type: EventType,
    pub payload: String,
    pub created_at: Millis,
}

/// Stores an event and one `pending` delivery per active subscribed webhook. Call it in the
/// transaction of the state change that causes the event. Returns the webhooks to wake.
pub fn enqueue_event(conn: &Connection, event: &NewEvent) -> Result<Vec<WebhookId>> {
    insert_event(conn, event)?;
    let subscribers = webhooks::active_subscribers(conn, event.survey_id, event.event_type)?;
    for webhook_id in &subscribers {
        insert_delivery(conn, *webhook_id, event, false)?;
    }
    Ok(subscribers)
}

fn insert_event(conn: &Connection, event: &NewEvent) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, survey_id, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![event.id, event.survey_id, event.event_type.as_str(), event.payload, event.created_at])?;
    Ok(())
}

pub(super) fn insert_delivery(
    conn: &Connection,
    webhook_id: WebhookId,
    event: &NewEvent,
    is_test: bool,
) -> Result<DeliveryId> {
    let id = DeliveryId::new();
    let status = if is_test { "delivering" } else { "pending" };
    conn.prepare_cached(
        "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status, is_test, \
         next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?
    .execute(params![
        id,
        webhook_id,
        event.id,
        event.survey_id,
        event.event_type.as_str(),
        status,
        is_test,
        event.created_at
    ])?;
    Ok(id)
}

/// A delivery claimed for sending, with its body.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    pub event_type: String,
    pub payload: String,
    pub attempt_count: u32,
    /// Attempts made before the current retry schedule began.
    pub schedule_base: u32,
    pub is_test: bool,
}

/// Claims up to `limit` due deliveries of a webhook, oldest due first.
pub fn claim_due(
    conn: &Connection,
    webhook_id: WebhookId,
    now: Millis,
    lease_until: Millis,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>> {
    let mut select = conn.prepare_cached(
        "SELECT d.id, d.event_type, e.payload, d.attempt_count, d.schedule_base, d.is_test \
         FROM deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.webhook_id = ?1 AND d.status = 'pending' AND d.next_attempt_at <= ?2 \
         AND e.payload IS NOT NULL ORDER BY d.next_attempt_at LIMIT ?3",
    )?;
    let claimed = select
        .query_map(params![webhook_id, now, limit], |row| {
            Ok(ClaimedDelivery {
                id: row.get(0)?,
                event_type: row.get(1)?,
                payload: row.get(2)?,
                attempt_count: row.get(3)?,
                schedule_base: row.get(4)?,
                is_test: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut mark = conn.prepare_cached(
        "UPDATE deliveries SET status = 'delivering', lease_expires_at = ?2 WHERE id = ?1",
    )?;
    for delivery in &claimed {
        mark.execute(params![delivery.id, lease_until])?;
    }
    Ok(claimed)
}

/// When the webhook's next pending delivery falls due, if it has one.
pub fn next_due_at(conn: &Connection, webhook_id: WebhookId) -> Result<Option<Millis>> {
    Ok(conn
        .prepare_cached(
            "SELECT min(next_attempt_at) FROM deliveries WHERE webhook_id = ?1 AND status = 'pending'",
        )?
        .query_row([webhook_id], |row| row.get(0))?)
}

/// Returns claimed deliveries to `pending` unchanged (a paused or stopping actor).
pub fn release(conn: &Connection, ids: &[DeliveryId]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL \
         WHERE id = ?1 AND status = 'delivering'",
    )?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}

/// Returns one webhook's claims to `pending` (its actor died with them).
pub fn release_webhook_claims(conn: &Connection, webhook_id: WebhookId) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL \
             WHERE webhook_id = ?1 AND status = 'delivering' AND is_test = 0",
        )?
        .execute([webhook_id])?)
}

/// Releases every claim: run at start-up (claims of a dead process) and after shutdown.
/// An interrupted test delivery is failed instead, since tests are never retried.
pub fn release_claims(conn: &Connection, now: Millis) -> Result<usize> {
    conn.execute(
        "UPDATE deliveries SET status = 'failed', completed_at = ?1, lease_expires_at = NULL, \
         last_error = 'interrupted by a shutdown' WHERE status = 'delivering' AND is_test = 1",
        [now],
    )?;
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL WHERE status = 'delivering'",
        [],
    )?)
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// Failed for now; attempt again at this time.
    RetryAt(Millis),
    /// The retry policy is exhausted.
    Failed,
    /// The receiver said 410 Gone: the webhook is disabled at once and this delivery waits,
    /// paused with the others, until it is re-enabled.
    DisableWebhook(String),
}

/// One finished HTTP attempt and its consequence.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    /// 1-based number of this attempt.
    pub attempt: u32,
    pub started_at: Millis,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub response_truncated: bool,
    pub next: NextStep,
    /// Test deliveries never count towards auto-disable.
    pub is_test: bool,
}

/// What recording an attempt did to its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordEffect {
    /// The webhook was disabled by this record (410, or too many failed deliveries).
    pub webhook_disabled: bool,
}

/// Writes a batch of attempts (one webhook's, in the order they finished).
pub fn record_attempts(
    conn: &Connection,
    records: &[AttemptRecord],
    auto_disable_after: u32,
    now: Millis,
) -> Result<RecordEffect> {
    let mut effect = RecordEffect::default();
    for record in records {
        effect.webhook_disabled |=
            record_attempt(conn, record, auto_disable_after, now)?.webhook_disabled;
    }
    Ok(effect)
}

/// Writes an attempt and moves its delivery on. With `auto_disable_after` > 0, the webhook
/// is disabled when that many consecutive deliveries have ended `failed`.
pub fn record_attempt(
    conn: &Connection,
    rec: &AttemptRecord,
    auto_disable_after: u32,
    now: Millis,
) -> Result<RecordEffect> {
    let (status, next_at, completed_at) = match &rec.next {
        NextStep::Succeeded => ("succeeded", None, Some(now)),
        NextStep::RetryAt(at) => ("pending", Some(*at), None),
        NextStep::Failed => ("failed", None, Some(now)),
        NextStep::DisableWebhook(_) => ("pending", Some(now), None),
    };
    let updated = conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?2, attempt_count = ?3, next_attempt_at = ?4, \
             completed_at = ?5, lease_expires_at = NULL, last_attempt_at = ?6, \
             last_status_code = ?7, last_error = ?8 WHERE id = ?1 AND status = 'delivering'",
        )?
        .execute(params![
            rec.delivery_id,
            status,
            rec.attempt,
            next_at,
            completed_at,
            rec.started_at,
            rec.status_code,
            rec.error
        ])?;
    if updated == 0 {
        // Deleted with its webhook while in flight: nothing left to record against.
        return Ok(RecordEffect::default());
    }
    conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, \
         response_body, response_truncated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        rec.delivery_id,
        rec.attempt,
        rec.started_at,
        rec.duration_ms,
        rec.status_code,
        rec.error,
        rec.response_body,
        rec.response_truncated
    ])?;
    if rec.is_test {
        return Ok(RecordEffect::default());
    }
    let disabled = match &rec.next {
        NextStep::Succeeded => {
            conn.prepare_cached(
                "UPDATE webhooks SET consecutive_failures = 0 WHERE id = ?1 AND consecutive_failures <> 0",
            )?
            .execute([rec.webhook_id])?;
            false
        }
        NextStep::Failed => {
            let failures: Option<u32> = conn
                .prepare_cached(
                    "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 \
                     WHERE id = ?1 RETURNING consecutive_failures",
                )?
                .query_row([rec.webhook_id], |row| row.get(0))
                .optional()?;
            match failures {
                Some(n) if auto_disable_after > 0 && n >= auto_disable_after => {
                    let reason = format!("{n} consecutive deliveries failed");
                    webhooks::disable(conn, rec.webhook_id, &reason, now)?
                }
                _ => false,
            }
        }
        NextStep::DisableWebhook(reason) => webhooks::disable(conn, rec.webhook_id, reason, now)?,
        NextStep::RetryAt(_) => false,
    };
    Ok(RecordEffect {
        webhook_disabled: disabled,
    })
}

/// Stores a `webhook.test` event and its delivery, already claimed: the test route sends it
/// at once and records the one attempt; it is never retried.
pub fn create_test_delivery(
    conn: &Connection,
    webhook: &Webhook,
    event: &NewEvent,
    lease_until: Millis,
) -> Result<ClaimedDelivery> {
    insert_event(conn, event)?;
    let id = insert_delivery(conn, webhook.id, event, true)?;
    conn.prepare_cached("UPDATE deliveries SET lease_expires_at = ?2 WHERE id = ?1")?
        .execute(params![id, lease_until])?;
    Ok(ClaimedDelivery {
        id,
        event_type: event.event_type.as_str().to_owned(),
        payload: event.payload.clone(),
        attempt_count: 0,
        schedule_base: 0,
        is_test: true,
    })
}
