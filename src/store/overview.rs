//! Operators' reads: the queue summary per webhook, the deliveries of the last hour minute
//! by minute, and the attempts of many deliveries at once. Read-only SQL behind `hookd status`,
//! the admin API, `/metrics` and the operator page.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::Result;
use super::delivery_log::Attempt;
use crate::domain::time::Millis;
use crate::domain::{DeliveryId, DeliveryOrder, SurveyId, WebhookId};

/// Whether a webhook receives deliveries, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    Active,
    /// Turned off by hookd itself (too many failed deliveries, or a 410 Gone).
    Disabled,
    /// Turned off by an operator (`isActive: false`).
    Inactive,
}

impl WebhookState {
    /// A webhook's state from its stored flags: hookd sets `disabled_at` when it turns a
    /// webhook off; an operator's `isActive: false` leaves it empty.
    pub fn of(is_active: bool, disabled_at: Option<Millis>) -> Self {
        match (is_active, disabled_at) {
            (true, _) => Self::Active,
            (false, Some(_)) => Self::Disabled,
            (false, None) => Self::Inactive,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Inactive => "inactive",
        }
    }
}

/// Deliveries of one webhook by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub pending: u64,
    pub delivering: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// One webhook's line of the queue summary.
#[derive(Debug, Clone)]
pub struct WebhookSummary {
    pub webhook_id: WebhookId,
    pub survey_id: SurveyId,
    pub name: String,
    pub url: String,
    pub state: WebhookState,
    pub ordering: DeliveryOrder,
    pub disabled_at: Option<Millis>,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: u32,
    /// The streak when hookd disabled it: deliveries in flight then still end and count,
    /// so `consecutive_failures` may have passed it.
    pub failures_when_disabled: Option<u32>,
    pub counts: StatusCounts,
    /// When the oldest unfinished (pending or delivering) delivery was created.
    pub oldest_pending_at: Option<Millis>,
    /// When the next pending delivery falls due (paused while the webhook is off).
    pub next_attempt_at: Option<Millis>,
    /// Claims past their lease at the time asked (released by the engine's next sweep).
    pub expired_claims: u64,
}

/// Every webhook with its deliveries counted by status, disabled webhooks first, then
/// inactive, then active; claims past their lease at `now`. One grouped query: the summary
/// is read at every scrape.
pub fn queue_summary(conn: &Connection, now: Millis) -> Result<Vec<WebhookSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT w.id, w.survey_id, w.name, w.url, w.is_active, w.disabled_at, w.disabled_reason, \
         w.consecutive_failures, w.ordering, w.failures_when_disabled, \
         count(CASE WHEN d.status = 'pending' THEN 1 END), \
         count(CASE WHEN d.status = 'delivering' THEN 1 END), \
         count(CASE WHEN d.status = 'succeeded' THEN 1 END), \
         count(CASE WHEN d.status = 'failed' THEN 1 END), \
         min(CASE WHEN d.status IN ('pending', 'delivering') THEN d.created_at END), \
         min(CASE WHEN d.status = 'pending' THEN d.next_attempt_at END), \
         count(CASE WHEN d.status = 'delivering' AND d.lease_expires_at < ?1 THEN 1 END) \
         FROM webhooks w LEFT JOIN deliveries d ON d.webhook_id = w.id \
         GROUP BY w.id \
         ORDER BY CASE WHEN w.is_active THEN 2 WHEN w.disabled_at IS NOT NULL THEN 0 ELSE 1 END, \
         w.name, w.id",
    )?;
    let rows = stmt.query_map([now], |row| {
        let is_active: bool = row.get(4)?;
        let disabled_at: Option<Millis> = row.get(5)?;
        let state = WebhookState::of(is_active, disabled_at);
        Ok(WebhookSummary {
            webhook_id: row.get(0)?,
            survey_id: row.get(1)?,
            name: row.get(2)?,
            url: row.get(3)?,
            state,
            ordering: row.get(8)?,
            disabled_at,
            disabled_reason: row.get(6)?,
            consecutive_failures: row.get(7)?,
            failures_when_disabled: row.get(9)?,
            counts: StatusCounts {
                pending: count(row, 10)?,
                delivering: count(row, 11)?,
                succeeded: count(row, 12)?,
                failed: count(row, 13)?,
            },
            oldest_pending_at: row.get(14)?,
            next_attempt_at: row.get(15)?,
            expired_claims: count(row, 16)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A `count(...)` column (SQLite integers are signed).
fn count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
}

/// Deliveries whose latest attempt started in one minute, by where that attempt left them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// Start of the minute.
    pub minute: Millis,
    /// Delivered: the latest attempt got a 2xx.
    pub succeeded: u64,
    /// Not finished: the latest attempt failed and the delivery will be tried again (when
    /// its retry falls due, or when its webhook is re-enabled), or is being tried now.
    pub retry: u64,
    /// Failed for good: the retry policy is exhausted.
    pub failed: u64,
}

const MINUTE_MS: Millis = 60_000;

/// Deliveries attempted since `since`, each counted once: in the minute of its latest
/// attempt, by its status now. A delivery tried five times is one delivery, not five bars;
/// minutes without any are left out. The finished ones read like `hookd_deliveries_total`
/// (attempts are `hookd_attempts_total`'s). The attempts' index finds them.
pub fn throughput(conn: &Connection, since: Millis) -> Result<Vec<MinuteCounts>> {
    let mut stmt = conn.prepare_cached(
        "SELECT (d.last_attempt_at / ?2) * ?2 AS minute, \
         count(CASE WHEN d.status = 'succeeded' THEN 1 END), \
         count(CASE WHEN d.status = 'failed' THEN 1 END), \
         count(*) \
         FROM deliveries d \
         WHERE d.id IN (SELECT delivery_id FROM attempts WHERE started_at >= ?1) \
         AND d.last_attempt_at >= ?1 \
         GROUP BY minute ORDER BY minute",
    )?;
    let rows = stmt.query_map(params![since, MINUTE_MS], |row| {
        let (succeeded, failed, all) = (count(row, 1)?, count(row, 2)?, count(row, 3)?);
        Ok(MinuteCounts {
            minute: row.get(0)?,
            succeeded,
            retry: all - succeeded - failed,
            failed,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The attempts of several deliveries (first to last each), in one query.
pub fn attempts_of(
    conn: &Connection,
    ids: &[DeliveryId],
) -> Result<HashMap<DeliveryId, Vec<Attempt>>> {
    let ids_json = super::to_json(&ids.iter().map(|id| id.to_string()).collect::<Vec<_>>());
    let mut stmt = conn.prepare_cached(
        "SELECT delivery_id, attempt, started_at, duration_ms, status_code, error, response_body, \
         response_truncated FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?1)) \
         ORDER BY delivery_id, attempt",
    )?;
    let rows = stmt.query_map([ids_json], |row| {
        Ok((
            row.get::<_, DeliveryId>(0)?,
            Attempt {
                attempt: row.get(1)?,
                started_at: row.get(2)?,
                duration_ms: row.get(3)?,
                status_code: row.get(4)?,
                error: row.get(5)?,
                response_body: row.get(6)?,
                response_truncated: row.get(7)?,
            },
        ))
    })?;
    let mut by_delivery: HashMap<DeliveryId, Vec<Attempt>> = HashMap::new();
    for row in rows {
        let (id, attempt) = row?;
        by_delivery.entry(id).or_default().push(attempt);
    }
    Ok(by_delivery)
}
