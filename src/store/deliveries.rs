//! Events, deliveries and attempts: the durable queue the delivery engine works from.
//!
//! The life of a delivery in SQL: [`enqueue_event`] writes it `pending`; the webhook's
//! actor claims it ([`super::claims`]: `delivering`, under a lease, with a claim token);
//! [`record_attempt`] writes the attempt and moves it to `succeeded`, `failed` or back to
//! `pending` with its next time — only while its claim still holds, so an outcome that
//! comes late never lands on a newer claim.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use super::claims::{Claim, ClaimedDelivery};
use super::webhooks::{self, Webhook};
use crate::domain::time::Millis;
use crate::domain::{DeliveryId, DeliveryOrder, EventId, EventType, SurveyId, WebhookId};

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

/// Stores an event and one `pending` delivery per subscribed webhook (active, or disabled
/// by hookd: paused). Call it in the transaction of the state change that causes the
/// event. Returns the active webhooks, whose actors are to be woken.
pub fn enqueue_event(conn: &Connection, event: &NewEvent) -> Result<Vec<WebhookId>> {
    insert_event(conn, event)?;
    let mut wake = Vec::new();
    for webhook in webhooks::subscribers(conn, event.survey_id, event.event_type)? {
        let queued_at = (webhook.ordering == DeliveryOrder::Fifo).then_some(event.created_at);
        insert_delivery(conn, webhook.id, event, false, queued_at)?;
        if webhook.is_active {
            wake.push(webhook.id);
        }
    }
    Ok(wake)
}

pub(super) fn insert_event(conn: &Connection, event: &NewEvent) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, survey_id, event_type, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![event.id, event.survey_id, event.event_type.as_str(), event.payload, event.created_at])?;
    Ok(())
}

/// Writes one delivery of `event`; `queued_at` is its place in a FIFO webhook's queue.
pub(super) fn insert_delivery(
    conn: &Connection,
    webhook_id: WebhookId,
    event: &NewEvent,
    is_test: bool,
    queued_at: Option<Millis>,
) -> Result<DeliveryId> {
    let id = DeliveryId::new();
    let status = if is_test { "delivering" } else { "pending" };
    conn.prepare_cached(
        "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status, is_test, \
         next_attempt_at, created_at, queued_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
    )?
    .execute(params![
        id,
        webhook_id,
        event.id,
        event.survey_id,
        event.event_type.as_str(),
        status,
        is_test,
        event.created_at,
        queued_at
    ])?;
    Ok(id)
}

/// Writes the job of a message (SPEC §10): a delivery of `event` to a channel's queue,
/// due at `due_at` (a reminder is due days later). Returns its id, which is the message's.
pub(super) fn insert_job(
    conn: &Connection,
    queue: WebhookId,
    event: &NewEvent,
    due_at: Millis,
) -> Result<DeliveryId> {
    let id = DeliveryId::new();
    conn.prepare_cached(
        "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status, \
         next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
    )?
    .execute(params![
        id,
        queue,
        event.id,
        event.survey_id,
        event.event_type.as_str(),
        due_at,
        event.created_at
    ])?;
    Ok(id)
}

/// A webhook's ordering changed: a FIFO queue takes its pending deliveries in the order
/// their events were stored; a concurrent webhook's leave the FIFO index.
pub fn change_order(
    conn: &Connection,
    webhook_id: WebhookId,
    ordering: DeliveryOrder,
) -> Result<()> {
    let sql = match ordering {
        DeliveryOrder::Fifo => {
            "UPDATE deliveries SET queued_at = created_at WHERE webhook_id = ?1 \
             AND queued_at IS NULL AND (status = 'pending' OR status = 'delivering')"
        }
        DeliveryOrder::Concurrent => {
            "UPDATE deliveries SET queued_at = NULL WHERE webhook_id = ?1 \
             AND queued_at IS NOT NULL AND (status = 'pending' OR status = 'delivering')"
        }
    };
    conn.prepare_cached(sql)?.execute([webhook_id])?;
    Ok(())
}

/// A re-enabled webhook's pending deliveries: due now, oldest event first, each with a
/// fresh retry schedule.
pub fn resume_in_event_order(conn: &Connection, webhook_id: WebhookId) -> Result<()> {
    conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at = created_at, schedule_base = attempt_count \
         WHERE webhook_id = ?1 AND status = 'pending'",
    )?
    .execute([webhook_id])?;
    Ok(())
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
    /// The claim the attempt was made under.
    pub claim_token: i64,
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

impl AttemptRecord {
    /// The claim the attempt was made under.
    pub fn claim(&self) -> Claim {
        Claim {
            delivery_id: self.delivery_id,
            token: self.claim_token,
        }
    }
}

/// What recording an attempt did to its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordEffect {
    /// The webhook was disabled by this record (410, or too many failed deliveries).
    pub webhook_disabled: bool,
    /// Notices of that were queued to hookd's own channels, to wake.
    pub notify: super::notices::Notices,
}

/// Writes a batch of attempts (one webhook's, in the order they finished).
pub fn record_attempts(
    conn: &Connection,
    records: &[AttemptRecord],
    auto_disable_after: u32,
    now: Millis,
) -> Result<RecordEffect> {
    let mut effect = RecordEffect::default();
    let mut finished = Finished::default();
    for record in records {
        let one = record_one(conn, record, auto_disable_after, now, &mut finished)?;
        effect.webhook_disabled |= one.webhook_disabled;
        effect.notify = effect.notify.merge(one.notify);
    }
    finished.count(conn)?;
    Ok(effect)
}

/// Changes to `finished_counts` made in one write, by outcome: deliveries that finished
/// (outcomes, the engine's hot path, added once per batch of them instead of a trigger
/// per delivery) and finished ones reopened by a repair. Deletes are counted by a
/// trigger.
#[derive(Debug, Default)]
pub(super) struct Finished {
    succeeded: i64,
    failed: i64,
}

impl Finished {
    pub(super) fn add(&mut self, status: &str, deliveries: usize) {
        self.change(status, deliveries as i64);
    }

    pub(super) fn remove(&mut self, status: &str, deliveries: usize) {
        self.change(status, -(deliveries as i64));
    }

    fn change(&mut self, status: &str, by: i64) {
        match status {
            "succeeded" => self.succeeded += by,
            "failed" => self.failed += by,
            _ => {}
        }
    }

    /// Adds them to `finished_counts`, in the caller's transaction.
    pub(super) fn count(self, conn: &Connection) -> Result<()> {
        let mut add = conn.prepare_cached(
            "UPDATE finished_counts SET deliveries = deliveries + ?2 WHERE status = ?1",
        )?;
        for (status, deliveries) in [("succeeded", self.succeeded), ("failed", self.failed)] {
            if deliveries != 0 {
                add.execute(params![status, deliveries])?;
            }
        }
        Ok(())
    }
}

/// Writes an attempt and moves its delivery on. With `auto_disable_after` > 0, the webhook
/// is disabled when that many consecutive deliveries have ended `failed`.
pub fn record_attempt(
    conn: &Connection,
    rec: &AttemptRecord,
    auto_disable_after: u32,
    now: Millis,
) -> Result<RecordEffect> {
    let mut finished = Finished::default();
    let effect = record_one(conn, rec, auto_disable_after, now, &mut finished)?;
    finished.count(conn)?;
    Ok(effect)
}

/// [`record_attempt`], with a finished delivery noted in `finished` for the caller to count.
fn record_one(
    conn: &Connection,
    rec: &AttemptRecord,
    auto_disable_after: u32,
    now: Millis,
    finished: &mut Finished,
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
             completed_at = ?5, lease_expires_at = NULL, claim_token = NULL, last_attempt_at = ?6, \
             last_status_code = ?7, last_error = ?8 \
             WHERE id = ?1 AND status = 'delivering' AND claim_token = ?9",
        )?
        .execute(params![
            rec.delivery_id,
            status,
            rec.attempt,
            next_at,
            completed_at,
            rec.started_at,
            rec.status_code,
            rec.error,
            rec.claim_token
        ])?;
    if updated == 0 {
        // Deleted with its webhook while in flight, or its claim was released past its
        // lease (and perhaps claimed again): the claim this outcome belongs to is gone.
        return Ok(RecordEffect::default());
    }
    finished.add(status, updated);
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
    // hookd's own channels are never disabled: they are how people hear of the others.
    let may_disable = rec.webhook_id.queue().may_be_disabled();
    let effect = match &rec.next {
        NextStep::Succeeded => {
            conn.prepare_cached(
                "UPDATE webhooks SET consecutive_failures = 0 WHERE id = ?1 AND consecutive_failures <> 0",
            )?
            .execute([rec.webhook_id])?;
            RecordEffect::default()
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
                Some(n) if may_disable && auto_disable_after > 0 && n >= auto_disable_after => {
                    let reason = format!("{n} consecutive deliveries failed");
                    disable(conn, rec.webhook_id, &reason, now)?
                }
                _ => RecordEffect::default(),
            }
        }
        NextStep::DisableWebhook(reason) if may_disable => {
            disable(conn, rec.webhook_id, reason, now)?
        }
        NextStep::DisableWebhook(_) | NextStep::RetryAt(_) => RecordEffect::default(),
    };
    Ok(effect)
}

/// Disables a webhook for `reason` and queues the notice of it.
fn disable(conn: &Connection, id: WebhookId, reason: &str, now: Millis) -> Result<RecordEffect> {
    if !webhooks::disable(conn, id, reason, now)? {
        return Ok(RecordEffect::default());
    }
    let notify = match webhooks::find(conn, id)? {
        Some(webhook) => super::notices::webhook_changed(
            conn,
            &webhook,
            super::notices::Change::Disabled,
            reason,
            now,
        )?,
        None => super::notices::Notices::default(),
    };
    Ok(RecordEffect {
        webhook_disabled: true,
        notify,
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
    let id = insert_delivery(conn, webhook.id, event, true, None)?;
    let token: i64 = rand::random();
    conn.prepare_cached(
        "UPDATE deliveries SET lease_expires_at = ?2, claim_token = ?3 WHERE id = ?1",
    )?
    .execute(params![id, lease_until, token])?;
    Ok(ClaimedDelivery {
        id,
        claim_token: token,
        event_type: event.event_type.as_str().to_owned(),
        payload: event.payload.clone(),
        attempt_count: 0,
        schedule_base: 0,
        is_test: true,
    })
}
