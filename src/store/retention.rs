//! Retention: the SQL that forgets finished deliveries, their attempts and event bodies once
//! they are older than the retention period. The job that calls it in batches lives in
//! [`crate::ops::retention`].
//!
//! What is never touched: a `pending` or `delivering` delivery, and any event a remaining
//! delivery still refers to (a paused delivery of a disabled webhook keeps its body for as
//! long as it waits, however old).

use rusqlite::{Connection, params};

use super::Result;
use crate::domain::DeliveryId;
use crate::domain::time::Millis;

/// What one batch removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: usize,
    pub attempts: usize,
    pub events: usize,
}

impl Purged {
    pub fn add(&mut self, other: Purged) {
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.events += other.events;
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Removes up to `limit` deliveries that finished (succeeded or failed) before `cutoff`,
/// with their attempts, then up to `limit` events created before `cutoff` that no delivery
/// refers to any more. Run it in one transaction; call again while a count reaches `limit`.
pub fn purge_batch(conn: &Connection, cutoff: Millis, limit: u32) -> Result<Purged> {
    let ids: Vec<DeliveryId> = conn
        .prepare_cached(
            "SELECT id FROM deliveries WHERE status IN ('succeeded', 'failed') \
             AND completed_at < ?1 LIMIT ?2",
        )?
        .query_map(params![cutoff, limit], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let ids_json = super::id_list(&ids);
    let attempts = conn
        .prepare_cached(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT unhex(value, '-') FROM json_each(?1))",
        )?
        .execute([&ids_json])?;
    let deliveries = conn
        .prepare_cached(
            "DELETE FROM deliveries WHERE id IN (SELECT unhex(value, '-') FROM json_each(?1)) \
             AND status IN ('succeeded', 'failed')",
        )?
        .execute([&ids_json])?;
    // An event without deliveries past the retention period is also gone: it can no longer
    // be replayed, which is the point of forgetting patient data.
    let events = conn
        .prepare_cached(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) LIMIT ?2)",
        )?
        .execute(params![cutoff, limit])?;
    Ok(Purged {
        deliveries,
        attempts,
        events,
    })
}
