//! Idempotency keys (SPEC §8): the answer to the first `POST` that carried an
//! `Idempotency-Key`, kept so that a repeat is answered the same without doing anything.
//!
//! An answer to a request that changed something is saved by the same writer job as the
//! change ([`save`] runs inside it), so both commit together or neither does. Rows older
//! than [`KEEP_MS`] are not answered any more and are purged by the retention job.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::domain::time::Millis;

/// How long an answer is kept: 24 hours.
pub const KEEP_MS: Millis = 24 * 60 * 60 * 1000;

/// Whose keys these are: `key:<api key id>` under `/api/`, `token:<sha-256 of the link's
/// token>` for `/r/{token}` (the token itself is never stored).
pub type Scope = str;

/// A kept answer and the request it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// SHA-256 of the request's method, path and body bytes.
    pub fingerprint: Vec<u8>,
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// The answer kept for `key` in `scope`, unless it was kept before `since`.
pub fn find(conn: &Connection, scope: &Scope, key: &str, since: Millis) -> Result<Option<Kept>> {
    let kept = conn
        .prepare_cached(
            "SELECT fingerprint, status, content_type, location, body FROM idempotency_keys \
             WHERE scope = ?1 AND key = ?2 AND created_at >= ?3",
        )?
        .query_row(params![scope, key, since], |row| {
            Ok(Kept {
                fingerprint: row.get(0)?,
                status: row.get(1)?,
                content_type: row.get(2)?,
                location: row.get(3)?,
                body: row.get(4)?,
            })
        })
        .optional()?;
    Ok(kept)
}

/// Keeps the answer for `key` in `scope` (replacing an expired one not yet purged).
pub fn save(conn: &Connection, scope: &Scope, key: &str, kept: &Kept, now: Millis) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency_keys \
         (scope, key, fingerprint, status, content_type, location, body, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        scope,
        key,
        kept.fingerprint,
        kept.status,
        kept.content_type,
        kept.location,
        kept.body,
        now
    ])?;
    Ok(())
}

/// Removes up to `limit` answers kept before `cutoff`; answers how many went.
pub fn purge_batch(conn: &Connection, cutoff: Millis, limit: u32) -> Result<usize> {
    let purged = conn
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE rowid IN \
             (SELECT rowid FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2)",
        )?
        .execute(params![cutoff, limit])?;
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::run(&mut conn).unwrap();
        conn
    }

    fn answer(body: &str) -> Kept {
        Kept {
            fingerprint: vec![7; 32],
            status: 201,
            content_type: Some("application/json".into()),
            location: Some("/api/surveys/x".into()),
            body: body.as_bytes().to_vec(),
        }
    }

    const NOW: Millis = 1_700_000_000_000;

    #[test]
    fn a_kept_answer_is_found_in_its_scope_only() {
        let conn = database();
        save(&conn, "key:a", "k1", &answer("{}"), NOW).unwrap();
        let since = NOW - KEEP_MS;
        assert_eq!(
            find(&conn, "key:a", "k1", since).unwrap(),
            Some(answer("{}"))
        );
        assert_eq!(find(&conn, "key:b", "k1", since).unwrap(), None);
        assert_eq!(find(&conn, "key:a", "k2", since).unwrap(), None);
    }

    #[test]
    fn answers_are_purged_after_24_hours_and_not_answered_after_that() {
        let conn = database();
        save(&conn, "key:a", "old", &answer("old"), NOW - KEEP_MS - 1).unwrap();
        save(&conn, "key:a", "fresh", &answer("fresh"), NOW - KEEP_MS + 1).unwrap();
        let since = NOW - KEEP_MS;
        assert_eq!(find(&conn, "key:a", "old", since).unwrap(), None);

        assert_eq!(purge_batch(&conn, NOW - KEEP_MS, 100).unwrap(), 1);
        assert_eq!(purge_batch(&conn, NOW - KEEP_MS, 100).unwrap(), 0);
        assert!(find(&conn, "key:a", "fresh", since).unwrap().is_some());
        let left: i64 = conn
            .query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
    }

    #[test]
    fn an_expired_answer_not_yet_purged_gives_way_to_a_new_one() {
        let conn = database();
        save(&conn, "key:a", "k", &answer("old"), NOW - KEEP_MS - 1).unwrap();
        save(&conn, "key:a", "k", &answer("new"), NOW).unwrap();
        let found = find(&conn, "key:a", "k", NOW - KEEP_MS).unwrap().unwrap();
        assert_eq!(found.body, b"new");
    }
}
