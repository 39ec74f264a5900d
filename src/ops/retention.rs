//! The retention job: once at start and then every hour, forget finished deliveries, their
//! attempts and event bodies older than `HOOKD_RETENTION_DAYS` (the SQL is in
//! [`crate::store::retention`]), and the answers kept for idempotency keys once their 24
//! hours are over ([`crate::store::idempotency`]). It works in small batches, each its own
//! write, so the server's own writes never wait long behind it.

use std::time::Duration;

use crate::domain::time::{Millis, now_ms};
use crate::store::idempotency::{self, KEEP_MS};
use crate::store::retention::{Purged, purge_batch};
use crate::store::{self, Store};

/// Rows per batch (deliveries, and events).
pub const BATCH: u32 = 500;
/// How often the job runs.
pub const EVERY: Duration = Duration::from_secs(60 * 60);

/// Purges everything finished before `cutoff`, batch by batch, and says how much went.
pub async fn purge(store: &Store, cutoff: Millis) -> store::Result<Purged> {
    let mut total = Purged::default();
    loop {
        let batch = store.write(move |c| purge_batch(c, cutoff, BATCH)).await?;
        total.add(batch);
        let full = BATCH as usize;
        if batch.deliveries < full && batch.events < full {
            return Ok(total);
        }
    }
}

/// Forgets the answers of idempotency keys kept before `cutoff`; says how many went.
pub async fn purge_idempotency_keys(store: &Store, cutoff: Millis) -> store::Result<usize> {
    let mut total = 0;
    loop {
        let purged = store
            .write_relaxed(move |c| idempotency::purge_batch(c, cutoff, BATCH))
            .await?;
        total += purged;
        if purged < BATCH as usize {
            return Ok(total);
        }
    }
}

/// The job itself, until the server aborts it at shutdown.
pub async fn run(store: Store, retention: Duration) {
    let keep = Millis::try_from(retention.as_millis()).unwrap_or(Millis::MAX);
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let cutoff = now_ms().saturating_sub(keep);
        match purge(&store, cutoff).await {
            Ok(purged) if !purged.is_empty() => tracing::info!(
                deliveries = purged.deliveries,
                attempts = purged.attempts,
                events = purged.events,
                "retention: purged finished deliveries past the retention period"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention: purge failed; trying again later"),
        }
        match purge_idempotency_keys(&store, now_ms().saturating_sub(KEEP_MS)).await {
            Ok(0) => {}
            Ok(keys) => tracing::info!(keys, "retention: purged idempotency keys past 24 hours"),
            Err(error) => {
                tracing::warn!(%error, "retention: purging idempotency keys failed; trying again later")
            }
        }
    }
}
