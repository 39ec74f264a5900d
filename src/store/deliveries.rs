//! Events, deliveries and attempts: the durable queue the delivery engine works from.
//!
//! The life of a delivery in SQL: [`enqueue_event`] writes it `pending`; the webhook's
//! actor [`claim_due`]s it (`delivering`, under a lease, with a claim token);
//! [`record_attempt`] writes the attempt and moves it to `succeeded`, `failed` or back to
//! `pending` with its next time — only while its claim still holds, so an outcome that
//! comes late never lands on a newer claim. A claim left by a dead process is released at
//! start-up ([`release_claims`]); one left behind while the server runs (an attempt that
//! will never report) is found past its lease ([`expired_claims`]) and released, so an
//! attempt in flight during a crash is made again.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
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

/// A delivery claimed for sending, with its body.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    /// Names this claim: its outcome is recorded only while the claim still holds.
    pub claim_token: i64,
    pub event_type: String,
    pub payload: String,
    pub attempt_count: u32,
    /// Attempts made before the current retry schedule began.
    pub schedule_base: u32,
    pub is_test: bool,
}

/// A claim as the store knows it: which delivery, under which token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub delivery_id: DeliveryId,
    pub token: i64,
}

impl ClaimedDelivery {
    pub fn claim(&self) -> Claim {
        Claim {
            delivery_id: self.id,
            token: self.claim_token,
        }
    }
}

/// Claims up to `limit` due deliveries of an active webhook under a new claim token: the
/// oldest due first, or for a FIFO webhook its queue head alone, and only while nothing
/// else of it is claimed (a delivery waiting for a retry holds back the ones behind it).
pub fn claim_due(
    conn: &Connection,
    webhook_id: WebhookId,
    ordering: DeliveryOrder,
    now: Millis,
    lease_until: Millis,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>> {
    let active: Option<bool> = conn
        .prepare_cached("SELECT is_active FROM webhooks WHERE id = ?1")?
        .query_row([webhook_id], |row| row.get(0))
        .optional()?;
    if active != Some(true) || limit == 0 {
        return Ok(Vec::new());
    }
    let token: i64 = rand::random();
    let read = |row: &rusqlite::Row<'_>| {
        Ok(ClaimedDelivery {
            id: row.get(0)?,
            claim_token: token,
            event_type: row.get(1)?,
            payload: row.get(2)?,
            attempt_count: row.get(3)?,
            schedule_base: row.get(4)?,
            is_test: row.get(5)?,
        })
    };
    let claimed = match ordering {
        DeliveryOrder::Concurrent => conn
            .prepare_cached(
                "SELECT d.id, d.event_type, e.payload, d.attempt_count, d.schedule_base, d.is_test \
                 FROM deliveries d JOIN events e ON e.id = d.event_id \
                 WHERE d.webhook_id = ?1 AND d.status = 'pending' AND d.next_attempt_at <= ?2 \
                 ORDER BY d.next_attempt_at LIMIT ?3",
            )?
            .query_map(params![webhook_id, now, limit], read)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        DeliveryOrder::Fifo => {
            if claimed_count(conn, webhook_id)? > 0 {
                return Ok(Vec::new());
            }
            conn.prepare_cached(
                "SELECT d.id, d.event_type, e.payload, d.attempt_count, d.schedule_base, d.is_test, \
                 d.next_attempt_at FROM deliveries d JOIN events e ON e.id = d.event_id \
                 WHERE d.webhook_id = ?1 AND d.status = 'pending' AND d.queued_at IS NOT NULL \
                 ORDER BY d.queued_at, d.rowid LIMIT 1",
            )?
            .query_row([webhook_id], |row| {
                Ok((read(row)?, row.get::<_, Millis>(6)?))
            })
            .optional()?
            .filter(|(_, due)| *due <= now)
            .map(|(head, _)| head)
            .into_iter()
            .collect()
        }
    };
    let mut mark = conn.prepare_cached(
        "UPDATE deliveries SET status = 'delivering', lease_expires_at = ?2, claim_token = ?3 \
         WHERE id = ?1",
    )?;
    for delivery in &claimed {
        mark.execute(params![delivery.id, lease_until, token])?;
    }
    Ok(claimed)
}

/// How many of a webhook's queued deliveries are claimed now (test deliveries are not in
/// its queue).
fn claimed_count(conn: &Connection, webhook_id: WebhookId) -> Result<u32> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM deliveries WHERE webhook_id = ?1 AND status = 'delivering' \
             AND is_test = 0",
        )?
        .query_row([webhook_id], |row| row.get(0))?)
}

/// When the webhook's next claim can find something: its earliest pending delivery, or
/// for a FIFO webhook its queue head's time — none while a claim of it is out, since the
/// head can go only after that claim's outcome (whose record, or the lease sweep that
/// settles it, wakes the actor).
pub fn next_due_at(
    conn: &Connection,
    webhook_id: WebhookId,
    ordering: DeliveryOrder,
) -> Result<Option<Millis>> {
    let sql = match ordering {
        DeliveryOrder::Concurrent => {
            "SELECT min(next_attempt_at) FROM deliveries WHERE webhook_id = ?1 AND status = 'pending'"
        }
        DeliveryOrder::Fifo if claimed_count(conn, webhook_id)? > 0 => return Ok(None),
        DeliveryOrder::Fifo => {
            "SELECT next_attempt_at FROM deliveries WHERE webhook_id = ?1 AND status = 'pending' \
             AND queued_at IS NOT NULL ORDER BY queued_at, rowid LIMIT 1"
        }
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([webhook_id], |row| row.get(0))
        .optional()?
        .flatten())
}

/// Returns claims to `pending` unchanged (a paused or stopping actor); a claim that no
/// longer holds (recorded, released, claimed anew) is left alone.
pub fn release(conn: &Connection, claims: &[Claim]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL, claim_token = NULL \
         WHERE id = ?1 AND status = 'delivering' AND claim_token = ?2",
    )?;
    for claim in claims {
        stmt.execute(params![claim.delivery_id, claim.token])?;
    }
    Ok(())
}

/// Extends claims that are still being worked on to `until`.
pub fn extend_leases(conn: &Connection, claims: &[Claim], until: Millis) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries SET lease_expires_at = ?3 \
         WHERE id = ?1 AND status = 'delivering' AND claim_token = ?2",
    )?;
    for claim in claims {
        stmt.execute(params![claim.delivery_id, claim.token, until])?;
    }
    Ok(())
}

/// A claim past its lease, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredClaim {
    pub webhook_id: WebhookId,
    pub claim: Claim,
    pub is_test: bool,
}

/// The claims whose lease ran out before `now` (deliveries_claimed: no scan).
pub fn expired_claims(conn: &Connection, now: Millis) -> Result<Vec<ExpiredClaim>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, claim_token, webhook_id, is_test FROM deliveries \
         WHERE status = 'delivering' AND lease_expires_at < ?1 AND claim_token IS NOT NULL",
    )?;
    let rows = stmt.query_map([now], |row| {
        Ok(ExpiredClaim {
            claim: Claim {
                delivery_id: row.get(0)?,
                token: row.get(1)?,
            },
            webhook_id: row.get(2)?,
            is_test: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many claims are past their lease (operators' views).
pub fn count_expired_claims(conn: &Connection, now: Millis) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM deliveries WHERE status = 'delivering' AND lease_expires_at < ?1",
        )?
        .query_row([now], |row| row.get(0))?)
}

/// Settles claims that nobody works on any more: a delivery goes back to `pending` to be
/// attempted again; a test delivery (never retried) fails. A claim that no longer holds is
/// left alone.
pub fn settle_lost_claims(conn: &Connection, lost: &[ExpiredClaim], now: Millis) -> Result<()> {
    let mut fail_test = conn.prepare_cached(
        "UPDATE deliveries SET status = 'failed', completed_at = ?3, lease_expires_at = NULL, \
         claim_token = NULL, last_error = 'interrupted before its outcome was recorded' \
         WHERE id = ?1 AND status = 'delivering' AND claim_token = ?2",
    )?;
    let mut released = Vec::new();
    for claim in lost {
        if claim.is_test {
            fail_test.execute(params![claim.claim.delivery_id, claim.claim.token, now])?;
        } else {
            released.push(claim.claim);
        }
    }
    release(conn, &released)
}

/// Returns one webhook's claims to `pending` (its actor died with them).
pub fn release_webhook_claims(conn: &Connection, webhook_id: WebhookId) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL, claim_token = NULL \
             WHERE webhook_id = ?1 AND status = 'delivering' AND is_test = 0",
        )?
        .execute([webhook_id])?)
}

/// Releases every claim: run at start-up (claims of a dead process) and after shutdown.
/// An interrupted test delivery is failed instead, since tests are never retried.
pub fn release_claims(conn: &Connection, now: Millis) -> Result<usize> {
    conn.execute(
        "UPDATE deliveries SET status = 'failed', completed_at = ?1, lease_expires_at = NULL, \
         claim_token = NULL, last_error = 'interrupted by a shutdown' \
         WHERE status = 'delivering' AND is_test = 1",
        [now],
    )?;
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL, claim_token = NULL \
         WHERE status = 'delivering'",
        [],
    )?)
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

/// What recording an attempt did to its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordEffect {
    /// The webhook was disabled by this record (410, or too many failed deliveries).
    pub webhook_disabled: bool,
    /// A notice of that was queued to this webhook (the operations channel) to wake.
    pub notify: Option<WebhookId>,
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
        let one = record_attempt(conn, record, auto_disable_after, now)?;
        effect.webhook_disabled |= one.webhook_disabled;
        effect.notify = effect.notify.or(one.notify);
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
    // The operations channel is never disabled: it is how operators hear of the others.
    let may_disable = rec.webhook_id != WebhookId::OPERATIONS;
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
        None => None,
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
