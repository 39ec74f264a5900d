//! The two repairs that put finished deliveries back in the queue: retry (one delivery,
//! same id and body) and replay (every event since a time that a webhook has not had
//! delivered). Each takes the deliveries it reopens out of `finished_counts`.

use rusqlite::{Connection, params};

use super::deliveries::{DeliveryStatus, Finished, NewEvent, insert_delivery};
use super::delivery_log::{Delivery, find, payload};
use super::webhooks::Webhook;
use super::{Result, StoreError};
use crate::domain::time::Millis;
use crate::domain::{DeliveryId, DeliveryOrder, EventId, EventType};

/// Puts a finished delivery back in the queue, due now, with a fresh retry schedule; for a
/// FIFO webhook at the back of its queue.
const REOPEN: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, \
    completed_at = NULL, schedule_base = attempt_count, \
    queued_at = (SELECT CASE WHEN w.ordering = 'fifo' THEN ?2 END FROM webhooks w \
                 WHERE w.id = deliveries.webhook_id) \
    WHERE id = ?1";

/// Sends a finished delivery again now, same id and body, with a fresh retry schedule.
/// `delivery_in_progress` while it is pending or delivering.
pub fn retry(conn: &Connection, id: DeliveryId, now: Millis) -> Result<Delivery> {
    let delivery = find(conn, id)?.ok_or(StoreError::NotFound)?;
    if !matches!(
        delivery.status,
        DeliveryStatus::Failed | DeliveryStatus::Succeeded
    ) {
        return Err(StoreError::Conflict {
            code: "delivery_in_progress",
            message: format!(
                "the delivery is {}; it can be retried once it has finished",
                delivery.status.as_str()
            ),
        });
    }
    if payload(conn, delivery.event_id)?.is_none() {
        return Err(StoreError::Conflict {
            code: "payload_purged",
            message: "the event's body was purged by retention".into(),
        });
    }
    let reopened = conn.prepare_cached(REOPEN)?.execute(params![id, now])?;
    let mut finished = Finished::default();
    finished.remove(delivery.status.as_str(), reopened);
    finished.count(conn)?;
    find(conn, id)?.ok_or(StoreError::NotFound)
}

/// Queues, for every stored event since `since` that the webhook subscribes to and that
/// has no succeeded (or still queued) delivery to it, a delivery: a failed one is sent
/// again under its own id, an event never delivered gets a new one. Returns how many.
pub fn replay(conn: &Connection, webhook: &Webhook, since: Millis, now: Millis) -> Result<u64> {
    // One pass over the survey's events since `since` (events_by_survey_time), each checked
    // against its own deliveries to this webhook (deliveries_by_event): the last failed
    // delivery to reopen, if any.
    let mut events = conn.prepare_cached(
        "SELECT e.id, e.event_type, \
         (SELECT d.id FROM deliveries d WHERE d.event_id = e.id AND d.webhook_id = ?3 \
          AND d.status = 'failed' ORDER BY d.created_at DESC LIMIT 1) \
         FROM events e WHERE e.survey_id = ?1 AND e.created_at >= ?2 AND e.payload IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.webhook_id = ?3 \
         AND d.status IN ('succeeded', 'pending', 'delivering')) ORDER BY e.created_at",
    )?;
    let candidates = events
        .query_map(params![webhook.survey_id, since, webhook.id], |row| {
            Ok((
                row.get::<_, EventId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<DeliveryId>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut reopen = conn.prepare_cached(REOPEN)?;
    let queued_at = (webhook.ordering == DeliveryOrder::Fifo).then_some(now);
    let mut queued = 0;
    let mut finished = Finished::default();
    for (event_id, event_type, failed) in candidates {
        let Some(kind) = EventType::parse_subscribable(&event_type) else {
            continue;
        };
        if !webhook.events.contains(&kind) {
            continue;
        }
        match failed {
            Some(delivery_id) => {
                let reopened = reopen.execute(params![delivery_id, now])?;
                finished.remove("failed", reopened);
            }
            None => {
                let event = NewEvent {
                    id: event_id,
                    survey_id: webhook.survey_id,
                    event_type: kind,
                    payload: String::new(),
                    created_at: now,
                };
                insert_delivery(conn, webhook.id, &event, false, queued_at)?;
            }
        }
        queued += 1;
    }
    finished.count(conn)?;
    Ok(queued)
}
