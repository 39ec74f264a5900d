//! Control signals: how the command line tells a running server that it changed something.

use rusqlite::{Connection, params};

use super::Result;
use crate::domain::WebhookId;
use crate::domain::time::Millis;

/// Asks the server (now, or at its next start) to look at this webhook again.
pub fn signal(conn: &Connection, webhook_id: WebhookId, now: Millis) -> Result<()> {
    conn.execute(
        "INSERT INTO control_signals (webhook_id, created_at) VALUES (?1, ?2)",
        params![webhook_id, now],
    )?;
    Ok(())
}

/// Whether any signal waits (a cheap read before taking them).
pub fn any(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM control_signals)")?
        .query_row([], |row| row.get(0))?)
}

/// Takes every waiting signal.
pub fn take(conn: &Connection) -> Result<Vec<WebhookId>> {
    let mut stmt = conn.prepare_cached("DELETE FROM control_signals RETURNING webhook_id")?;
    let ids = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<WebhookId>>>()?;
    Ok(ids)
}
