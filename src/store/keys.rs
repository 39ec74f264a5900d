//! API keys: only their SHA-256 is stored; the key itself is shown once, at creation.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Result, StoreError};
use crate::domain::time::Millis;
use crate::domain::{KeyId, Role};

/// A stored key, without its secret part.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: KeyId,
    pub name: String,
    pub role: Role,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// To within a minute: the server writes it at most once a minute per key.
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// An unrevoked key as a running server keeps it in memory.
#[derive(Debug, Clone)]
pub struct LiveKey {
    pub hash: String,
    pub id: KeyId,
    pub role: Role,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    /// Whether the audit log already noted that this key expired.
    pub expiry_recorded: bool,
}

/// What a new key is.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub name: &'a str,
    pub role: Role,
    pub expires_at: Option<Millis>,
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
pub fn create(conn: &Connection, new: &NewKey<'_>, now: Millis) -> Result<(ApiKey, String)> {
    let key = generate();
    let id = KeyId::new();
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, created_at, role, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, new.name, hash(&key), now, new.role, new.expires_at],
    )?;
    Ok((
        ApiKey {
            id,
            name: new.name.to_owned(),
            role: new.role,
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        },
        key,
    ))
}

/// Every key, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, role, created_at, expires_at, last_used_at, revoked_at \
         FROM api_keys ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(ApiKey {
            id: row.get(0)?,
            name: row.get(1)?,
            role: row.get(2)?,
            created_at: row.get(3)?,
            expires_at: row.get(4)?,
            last_used_at: row.get(5)?,
            revoked_at: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes a key; revoking twice is harmless.
pub fn revoke(conn: &Connection, id: KeyId, now: Millis) -> Result<()> {
    require(conn, id)?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?2, revision = revision + 1 \
         WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(())
}

/// Gives a key a new role and returns the one it had.
pub fn set_role(conn: &Connection, id: KeyId, role: Role) -> Result<Role> {
    let before = require(conn, id)?;
    if before != role {
        conn.execute(
            "UPDATE api_keys SET role = ?2, revision = revision + 1 WHERE id = ?1",
            params![id, role],
        )?;
    }
    Ok(before)
}

/// The role of a stored key, or `NotFound`.
fn require(conn: &Connection, id: KeyId) -> Result<Role> {
    conn.query_row("SELECT role FROM api_keys WHERE id = ?1", [id], |row| {
        row.get(0)
    })
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// The unrevoked keys: what a running server keeps in memory, so that checking a key (a
/// bogus one included) needs no query.
pub fn live(conn: &Connection) -> Result<Vec<LiveKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key_hash, id, role, expires_at, last_used_at, expiry_recorded_at IS NOT NULL \
         FROM api_keys WHERE revoked_at IS NULL",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(LiveKey {
            hash: row.get(0)?,
            id: row.get(1)?,
            role: row.get(2)?,
            expires_at: row.get(3)?,
            last_used_at: row.get(4)?,
            expiry_recorded: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Changes whenever a key is created, revoked or given a new role (keys are never
/// deleted): the number of keys and the sum of their revisions.
pub fn version(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn
        .prepare_cached("SELECT count(*), coalesce(sum(revision), 0) FROM api_keys")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// Notes when keys were last used; an older time never replaces a newer one.
pub fn record_use(conn: &Connection, uses: &[(KeyId, Millis)]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
    )?;
    for (id, at) in uses {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

/// Marks a key's expiry as noted in the audit log; false if it already was.
pub fn record_expiry(conn: &Connection, id: KeyId, now: Millis) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE api_keys SET expiry_recorded_at = ?2 WHERE id = ?1 AND expiry_recorded_at IS NULL",
        params![id, now],
    )?;
    Ok(changed > 0)
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
