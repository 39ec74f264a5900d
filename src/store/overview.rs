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

/// The jobs of each message channel's queue by status (SPEC §10). They are read through
/// the queues' own index entries, so the cost follows the messages kept, not the webhook
/// deliveries.
pub fn message_counts(conn: &Connection) -> Result<[(&'static str, StatusCounts); 2]> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, count(*) FROM deliveries INDEXED BY deliveries_by_webhook \
         WHERE webhook_id = ?1 GROUP BY status",
    )?;
    let mut all = [
        ("email", StatusCounts::default()),
        ("sms", StatusCounts::default()),
    ];
    for ((_, counts), queue) in all.iter_mut().zip([WebhookId::EMAIL, WebhookId::SMS]) {
        let mut rows = stmt.query([queue])?;
        while let Some(row) = rows.next()? {
            let n = count(row, 1)?;
            match row.get::<_, String>(0)?.as_str() {
                "pending" => counts.pending = n,
                "delivering" => counts.delivering = n,
                "succeeded" => counts.succeeded = n,
                _ => counts.failed = n,
            }
        }
    }
    Ok(all)
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
    let ids_json = super::id_list(ids);
    let mut stmt = conn.prepare_cached(
        "SELECT delivery_id, attempt, started_at, duration_ms, status_code, error, response_body, \
         response_truncated FROM attempts WHERE delivery_id IN (SELECT unhex(value, '-') FROM json_each(?1)) \
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

/// The whole queue in numbers, for `/metrics`: read from the finished deliveries' counters
/// and the partial indexes of the unfinished ones, so its cost follows the backlog, never
/// the history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueTotals {
    pub counts: StatusCounts,
    /// Creation time of the oldest unfinished delivery.
    pub oldest_unfinished_at: Option<Millis>,
    /// Claims past their lease at the time asked.
    pub expired_claims: u64,
    /// Webhooks disabled by hookd.
    pub disabled_webhooks: u64,
    /// The message channels' jobs by status ([`message_counts`]).
    pub messages: [(&'static str, StatusCounts); 2],
}

/// The pending deliveries, from their partial index only (SQLite refuses the query
/// otherwise).
const PENDING_TOTALS: &str = "SELECT count(*), min(created_at) FROM deliveries \
     INDEXED BY deliveries_due WHERE status = 'pending'";

/// The claimed deliveries and those past their lease at `?1`, from their partial index.
const CLAIMED_TOTALS: &str = "SELECT count(*), min(created_at), \
     count(CASE WHEN lease_expires_at < ?1 THEN 1 END) \
     FROM deliveries INDEXED BY deliveries_claimed WHERE status = 'delivering'";

/// [`QueueTotals`] at `now`.
pub fn totals(conn: &Connection, now: Millis) -> Result<QueueTotals> {
    let mut totals = QueueTotals {
        messages: message_counts(conn)?,
        ..QueueTotals::default()
    };
    let mut finished = conn.prepare_cached("SELECT status, deliveries FROM finished_counts")?;
    let mut rows = finished.query([])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        match status.as_str() {
            "succeeded" => totals.counts.succeeded = count(row, 1)?,
            _ => totals.counts.failed = count(row, 1)?,
        }
    }
    let (pending, oldest_pending): (u64, Option<Millis>) = conn
        .prepare_cached(PENDING_TOTALS)?
        .query_row([], |row| Ok((count(row, 0)?, row.get(1)?)))?;
    let (delivering, oldest_claimed, expired): (u64, Option<Millis>, u64) = conn
        .prepare_cached(CLAIMED_TOTALS)?
        .query_row([now], |row| {
            Ok((count(row, 0)?, row.get(1)?, count(row, 2)?))
        })?;
    totals.counts.pending = pending;
    totals.counts.delivering = delivering;
    totals.oldest_unfinished_at = oldest_pending.into_iter().chain(oldest_claimed).min();
    totals.expired_claims = expired;
    totals.disabled_webhooks = conn
        .prepare_cached("SELECT count(*) FROM webhooks WHERE disabled_at IS NOT NULL")?
        .query_row([], |row| count(row, 0))?;
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rusqlite::{Connection, params};

    use super::{CLAIMED_TOTALS, PENDING_TOTALS, StatusCounts, totals};
    use crate::store::deliveries::Finished;

    const STATUSES: [&str; 4] = ["pending", "delivering", "succeeded", "failed"];

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate::run(&mut conn).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO surveys VALUES ('s', 'Survey', '[]', 1);
             INSERT INTO events VALUES ('e', 's', 'survey.response_completed', '{}', 1);",
        )
        .unwrap();
        conn
    }

    /// The counts by a full scan: what the counters must always equal.
    fn counted(conn: &Connection) -> StatusCounts {
        let count = |status: &str| -> u64 {
            conn.query_row(
                "SELECT count(*) FROM deliveries WHERE status = ?1",
                [status],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        };
        StatusCounts {
            pending: count("pending"),
            delivering: count("delivering"),
            succeeded: count("succeeded"),
            failed: count("failed"),
        }
    }

    #[derive(Debug, Clone)]
    enum Change {
        Insert { webhook: u8, status: usize },
        SetStatus { pick: usize, status: usize },
        Delete { pick: usize },
        DeleteWebhook { webhook: u8 },
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            // Deliveries are inserted pending (or claimed, for a test send), never finished.
            4 => (0..3u8, 0..2usize).prop_map(|(webhook, status)| Change::Insert { webhook, status }),
            4 => (any::<usize>(), 0..4usize).prop_map(|(pick, status)| Change::SetStatus { pick, status }),
            1 => any::<usize>().prop_map(|pick| Change::Delete { pick }),
            1 => (0..3u8).prop_map(|webhook| Change::DeleteWebhook { webhook }),
        ]
    }

    fn apply(conn: &Connection, change: &Change, n: &mut u32) {
        let ids: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT id FROM deliveries ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        match change {
            Change::Insert { webhook, status } => {
                conn.execute(
                    "INSERT OR IGNORE INTO webhooks (id, survey_id, name, url, events, retry_policy, \
                     created_at, updated_at) VALUES (?1, 's', 'HIS', 'https://his.example/', '[]', '[]', 1, 1)",
                    [format!("w{webhook}")],
                )
                .unwrap();
                *n += 1;
                conn.execute(
                    "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status, \
                     created_at) VALUES (?1, ?2, 'e', 's', 'survey.response_completed', ?3, ?4)",
                    params![format!("d{n:06}"), format!("w{webhook}"), STATUSES[*status], *n],
                )
                .unwrap();
            }
            Change::SetStatus { pick, status } if !ids.is_empty() => {
                let id = &ids[pick % ids.len()];
                let before: String = conn
                    .query_row("SELECT status FROM deliveries WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .unwrap();
                // As the store does: a finished delivery has its completion time, and
                // a change of status into or out of finished sets it.
                conn.execute(
                    "UPDATE deliveries SET status = ?2, completed_at = CASE \
                     WHEN ?2 = 'succeeded' OR ?2 = 'failed' THEN 1 END WHERE id = ?1",
                    params![id, STATUSES[*status]],
                )
                .unwrap();
                // A status change is the store's to count (only deletes have a trigger).
                let mut finished = Finished::default();
                finished.remove(&before, 1);
                finished.add(STATUSES[*status], 1);
                finished.count(conn).unwrap();
            }
            Change::Delete { pick } if !ids.is_empty() => {
                conn.execute(
                    "DELETE FROM deliveries WHERE id = ?1",
                    [&ids[pick % ids.len()]],
                )
                .unwrap();
            }
            Change::DeleteWebhook { webhook } => {
                conn.execute(
                    "DELETE FROM webhooks WHERE id = ?1",
                    [format!("w{webhook}")],
                )
                .unwrap();
            }
            _ => {}
        }
    }

    proptest! {
        #[test]
        fn the_counters_always_equal_a_full_count(changes in prop::collection::vec(change(), 1..60)) {
            let conn = database();
            let mut n = 0;
            for change in &changes {
                apply(&conn, change, &mut n);
                prop_assert_eq!(totals(&conn, 0).unwrap().counts, counted(&conn));
            }
        }
    }

    #[test]
    fn a_retry_and_a_replay_take_the_deliveries_they_reopen_out_of_the_counters() {
        use crate::store::{repairs, webhooks};
        let conn = database();
        let id = |n: u32| format!("0190a000-0000-7000-8000-{n:012}");
        // The same id as an SQL BLOB literal, as ids are stored.
        let blob = |n: u32| format!("X'0190a000000070008000{n:012}'");
        // A survey, a webhook for retries and one subscribed to the event type for the
        // replay, and two events, each with one failed delivery.
        conn.execute_batch(&format!(
            "INSERT INTO surveys VALUES ({s}, 'Survey', '[]', 1);
             INSERT INTO webhooks (id, survey_id, name, url, events, retry_policy, created_at,
                 updated_at) VALUES ({w1}, {s}, 'HIS', 'https://his.example/', '[]', '[]', 1, 1),
                 ({w2}, {s}, 'HIS', 'https://his.example/',
                  '[\"survey.response_completed\"]', '[]', 1, 1);
             INSERT INTO events VALUES ({e1}, {s}, 'survey.response_completed', '{{}}', 1),
                 ({e2}, {s}, 'survey.response_completed', '{{}}', 2);
             INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status,
                 created_at) VALUES ({d1}, {w1}, {e1}, {s}, 'survey.response_completed',
                 'delivering', 1), ({d2}, {w2}, {e2}, {s}, 'survey.response_completed',
                 'delivering', 2);
             UPDATE deliveries SET status = 'failed', completed_at = 3;",
            s = blob(1),
            w1 = blob(2),
            w2 = blob(3),
            e1 = blob(4),
            e2 = blob(5),
            d1 = blob(6),
            d2 = blob(7),
        ))
        .unwrap();
        let mut finished = Finished::default();
        finished.add("failed", 2);
        finished.count(&conn).unwrap();
        assert_eq!(totals(&conn, 0).unwrap().counts, counted(&conn));

        repairs::retry(&conn, id(6).parse().unwrap(), 4).unwrap();
        assert_eq!(totals(&conn, 0).unwrap().counts, counted(&conn));
        let webhook = webhooks::find(&conn, id(3).parse().unwrap())
            .unwrap()
            .unwrap();
        // Its failed delivery reopened, and one made for the event it never had.
        assert_eq!(repairs::replay(&conn, &webhook, 0, 4).unwrap(), 2);
        let now = totals(&conn, 0).unwrap().counts;
        assert_eq!(now, counted(&conn));
        assert_eq!((now.failed, now.pending), (0, 3));
    }

    #[test]
    fn the_totals_never_scan_the_deliveries_table() {
        let conn = database();
        // INDEXED BY makes SQLite refuse a query it cannot answer from the named index;
        // the plan shows no full scan of deliveries either.
        for sql in [PENDING_TOTALS, CLAIMED_TOTALS] {
            let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
            let plan: Vec<String> = explain
                .query_map(rusqlite::params_from_iter(unbound), |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(plan.iter().all(|step| step.contains("USING")), "{plan:?}");
        }
        totals(&conn, 0).unwrap();
    }
}
