//! Directory contacts.

use rusqlite::{Connection, OptionalExtension};

use super::{Result, StoreError};
use crate::domain::ContactId;

/// `NotFound` unless the contact exists.
pub fn require(conn: &Connection, id: ContactId) -> Result<()> {
    conn.prepare_cached("SELECT 1 FROM contacts WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .ok_or(StoreError::NotFound)
}
