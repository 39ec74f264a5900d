//! API keys: only their SHA-256 is stored; the key itself is shown once, at creation.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Result, StoreError};
use crate::domain::KeyId;
use crate::domain::time::Millis;

/// A stored key, without its secret part.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: KeyId,
    pub name: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A new key: 256 random bits, prefixed so it is recognisable in a config file.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("hkd_{}", hex::encode(bytes))
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Stores a new key and returns it with the clear key (to show once).
pub fn create(conn: &Connection, name: &str, now: Millis) -> Result<(ApiKey, String)> {
    let key = generate();
    let id = KeyId::new();
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, hash(&key), now],
    )?;
    Ok((
        ApiKey {
            id,
            name: name.to_owned(),
            created_at: now,
            revoked_at: None,
        },
        key,
    ))
}

/// Every key, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<ApiKey>> {
    let mut stmt = conn
        .prepare("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id")?;
    let rows = stmt.query_map([], |row| {
        Ok(ApiKey {
            id: row.get(0)?,
            name: row.get(1)?,
            created_at: row.get(2)?,
            revoked_at: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes a key; revoking twice is harmless.
pub fn revoke(conn: &Connection, id: KeyId, now: Millis) -> Result<()> {
    let exists = conn
        .query_row("SELECT 1 FROM api_keys WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound);
    }
    conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// The unrevoked keys by hash: what a running server keeps in memory, so that checking a
/// key (a bogus one included) needs no query.
pub fn live(conn: &Connection) -> Result<Vec<(String, KeyId)>> {
    let mut stmt =
        conn.prepare_cached("SELECT key_hash, id FROM api_keys WHERE revoked_at IS NULL")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Changes whenever a key is created or revoked (keys are never deleted): the number of
/// keys and of revoked ones.
pub fn version(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn
        .prepare_cached("SELECT count(*), count(revoked_at) FROM api_keys")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// Whether any unrevoked key exists (first start prints a bootstrap key otherwise).
pub fn any_active(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
