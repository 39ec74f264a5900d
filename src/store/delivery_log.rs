//! The record of deliveries: reading them and their attempts for the API and operators.
//! Read-only; the repairs that put finished deliveries back in the queue are
//! [`super::repairs`].

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::deliveries::DeliveryStatus;
use super::{Result, StoreError};
use crate::domain::time::Millis;
use crate::domain::{DeliveryId, EventId, SurveyId, WebhookId};

/// A delivery as the API and the operators see it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub survey_id: SurveyId,
    pub event_id: EventId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub is_test: bool,
    pub attempt_count: u32,
    pub next_attempt_at: Option<Millis>,
    pub last_attempt_at: Option<Millis>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub completed_at: Option<Millis>,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, survey_id, event_id, event_type, status, is_test, \
    attempt_count, next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, completed_at";

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = row.get(5)?;
    Ok(Delivery {
        id: row.get(0)?,
        webhook_id: row.get(1)?,
        survey_id: row.get(2)?,
        event_id: row.get(3)?,
        event_type: row.get(4)?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        is_test: row.get(6)?,
        attempt_count: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_attempt_at: row.get(9)?,
        last_status_code: row.get(10)?,
        last_error: row.get(11)?,
        created_at: row.get(12)?,
        completed_at: row.get(13)?,
    })
}

/// Filters of the deliveries list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<WebhookId>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    /// Only deliveries older than this one (the cursor).
    pub before: Option<DeliveryId>,
}

/// Deliveries, newest first.
pub fn list(conn: &Connection, filter: &DeliveryFilter, limit: u32) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries \
         WHERE (?1 IS NULL OR webhook_id = ?1) AND (?2 IS NULL OR status = ?2) \
         AND (?3 IS NULL OR event_type = ?3) AND (?4 IS NULL OR id < ?4) \
         ORDER BY id DESC LIMIT ?5"
    ))?;
    let rows = stmt.query_map(
        params![
            filter.webhook_id,
            filter.status.map(DeliveryStatus::as_str),
            filter.event_type,
            filter.before,
            limit
        ],
        delivery_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A delivery by id.
pub fn find(conn: &Connection, id: DeliveryId) -> Result<Option<Delivery>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
        ))?
        .query_row([id], delivery_from_row)
        .optional()?)
}

/// A delivery of a given webhook (`NotFound` under another one).
pub fn get(conn: &Connection, webhook_id: WebhookId, id: DeliveryId) -> Result<Delivery> {
    find(conn, id)?
        .filter(|d| d.webhook_id == webhook_id)
        .ok_or(StoreError::NotFound)
}

/// The stored body of an event (`None` once purged).
pub fn payload(conn: &Connection, event_id: EventId) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT payload FROM events WHERE id = ?1")?
        .query_row([event_id], |row| row.get(0))
        .optional()?
        .flatten())
}

/// One attempt as recorded.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: Millis,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub response_truncated: bool,
}

/// The attempts of a delivery, first to last.
pub fn attempts(conn: &Connection, delivery_id: DeliveryId) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, started_at, duration_ms, status_code, error, response_body, response_truncated \
         FROM attempts WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    let rows = stmt.query_map([delivery_id], |row| {
        Ok(Attempt {
            attempt: row.get(0)?,
            started_at: row.get(1)?,
            duration_ms: row.get(2)?,
            status_code: row.get(3)?,
            error: row.get(4)?,
            response_body: row.get(5)?,
            response_truncated: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
