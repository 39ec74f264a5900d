//! Versioned migrations through `PRAGMA user_version`.
//!
//! Version 1 is `schema.sql` itself. A later change appends its migration to [`MIGRATIONS`]
//! and edits `schema.sql` so that the file keeps describing the current schema.

use rusqlite::{Connection, TransactionBehavior};

use super::{Result, StoreError};

/// Migration `i` brings the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("../../schema.sql")];

/// Applies every migration the database lacks. The version is read inside an exclusive
/// transaction, so a server and a command line starting together never both migrate.
pub fn run(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        let Some(sql) = MIGRATIONS.get(found as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
        tracing::info!(version = found + 1, "database migrated");
    }
}
