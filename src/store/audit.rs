//! The audit log: who (which key) did what admin action, when. Never a secret or payload.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::{Result, to_json};
use crate::domain::time::Millis;

/// Who acted: a stored key's id, `env` for `HOOKD_API_KEY`, `cli` for the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

/// One audit entry to write.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    /// Non-sensitive facts about the change (field names, counts), never values of secrets.
    pub detail: Value,
}

pub fn record(conn: &Connection, entry: &Entry<'_>, now: Millis) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, key_id, action, target_type, target_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![now, entry.actor.0, entry.action, entry.target_type, entry.target_id, to_json(&entry.detail)])?;
    Ok(())
}

/// An audit entry as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: i64,
    pub at: Millis,
    pub key_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub detail: Value,
}

/// Entries newest first, before the cursor id.
pub fn list(conn: &Connection, before: Option<i64>, limit: u32) -> Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, key_id, action, target_type, target_id, detail FROM audit_log \
         WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![before, limit], |row| {
        let detail: String = row.get(6)?;
        Ok(Record {
            id: row.get(0)?,
            at: row.get(1)?,
            key_id: row.get(2)?,
            action: row.get(3)?,
            target_type: row.get(4)?,
            target_id: row.get(5)?,
            detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
