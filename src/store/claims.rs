//! Claims: how the delivery engine takes deliveries to send, and gives them back.
//!
//! A claim moves a `pending` delivery to `delivering` under a lease (`lease_expires_at`)
//! and a token (`claim_token`). Every write that ends or releases a claim names its token,
//! so a late one never touches a newer claim. Claims past their lease are found through
//! `deliveries_claimed` without a scan ([`expired_claims`]) and settled by the engine's
//! sweep; the claims of a dead process are released at start-up ([`release_claims`]).

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use super::deliveries::Finished;
use crate::domain::time::Millis;
use crate::domain::{DeliveryId, DeliveryOrder, WebhookId};

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

/// What a claim found: the deliveries claimed, and when the next claim can find more.
pub type Claimed = (Vec<ClaimedDelivery>, Option<Millis>);

/// Claims up to `limit` due deliveries of an active webhook under a new claim token, the
/// oldest due first, and says when the next claim can find something. A FIFO webhook gets
/// its queue head alone, and only while nothing else of it is claimed (a delivery waiting
/// for a retry holds back the ones behind it); while one of its claims is out there is no
/// next time, since the head can go only after that claim's outcome (whose record, or the
/// lease sweep that settles it, wakes the actor).
pub fn claim_due(
    conn: &Connection,
    webhook_id: WebhookId,
    ordering: DeliveryOrder,
    now: Millis,
    lease_until: Millis,
    limit: u32,
) -> Result<Claimed> {
    let active: Option<bool> = conn
        .prepare_cached("SELECT is_active FROM webhooks WHERE id = ?1")?
        .query_row([webhook_id], |row| row.get(0))
        .optional()?;
    if active != Some(true) || limit == 0 {
        return Ok((Vec::new(), None));
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
    let (claimed, next_due) = match ordering {
        DeliveryOrder::Concurrent => {
            let claimed = conn
                .prepare_cached(
                    "SELECT d.id, d.event_type, e.payload, d.attempt_count, d.schedule_base, \
                     d.is_test FROM deliveries d JOIN events e ON e.id = d.event_id \
                     WHERE d.webhook_id = ?1 AND d.status = 'pending' AND d.next_attempt_at <= ?2 \
                     ORDER BY d.next_attempt_at LIMIT ?3",
                )?
                .query_map(params![webhook_id, now, limit], read)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            (claimed, next_pending_at(conn, webhook_id)?)
        }
        DeliveryOrder::Fifo if claimed_count(conn, webhook_id)? > 0 => (Vec::new(), None),
        DeliveryOrder::Fifo => {
            let head = conn
                .prepare_cached(
                    "SELECT d.id, d.event_type, e.payload, d.attempt_count, d.schedule_base, \
                     d.is_test, d.next_attempt_at FROM deliveries d JOIN events e ON e.id = d.event_id \
                     WHERE d.webhook_id = ?1 AND d.status = 'pending' AND d.queued_at IS NOT NULL \
                     ORDER BY d.queued_at, d.rowid LIMIT 1",
                )?
                .query_row([webhook_id], |row| Ok((read(row)?, row.get::<_, Millis>(6)?)))
                .optional()?;
            match head {
                Some((head, due)) if due <= now => (vec![head], None),
                Some((_, due)) => (Vec::new(), Some(due)),
                None => (Vec::new(), None),
            }
        }
    };
    let mut mark = conn.prepare_cached(
        "UPDATE deliveries SET status = 'delivering', lease_expires_at = ?2, claim_token = ?3 \
         WHERE id = ?1",
    )?;
    for delivery in &claimed {
        mark.execute(params![delivery.id, lease_until, token])?;
    }
    Ok((claimed, next_due))
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

/// When the webhook's earliest pending delivery falls due, if it has one.
fn next_pending_at(conn: &Connection, webhook_id: WebhookId) -> Result<Option<Millis>> {
    Ok(conn
        .prepare_cached(
            "SELECT min(next_attempt_at) FROM deliveries WHERE webhook_id = ?1 AND status = 'pending'",
        )?
        .query_row([webhook_id], |row| row.get(0))?)
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
    let mut finished = Finished::default();
    for claim in lost {
        if claim.is_test {
            let failed =
                fail_test.execute(params![claim.claim.delivery_id, claim.claim.token, now])?;
            finished.add("failed", failed);
        } else {
            released.push(claim.claim);
        }
    }
    finished.count(conn)?;
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
    let failed = conn.execute(
        "UPDATE deliveries SET status = 'failed', completed_at = ?1, lease_expires_at = NULL, \
         claim_token = NULL, last_error = 'interrupted by a shutdown' \
         WHERE status = 'delivering' AND is_test = 1",
        [now],
    )?;
    let mut finished = Finished::default();
    finished.add("failed", failed);
    finished.count(conn)?;
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL, claim_token = NULL \
         WHERE status = 'delivering'",
        [],
    )?)
}
