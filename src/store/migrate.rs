//! Versioned schema through `PRAGMA user_version`.
//!
//! A new database gets `schema.sql`, the current schema, in one step. An existing database
//! of an older version gets the upgrades it lacks, in order. A change to the schema edits
//! `schema.sql` *and* appends its upgrade to [`UPGRADES`]; the test below checks that both
//! roads lead to the same tables, columns, indexes and foreign keys.

use rusqlite::{Connection, TransactionBehavior};

use super::{Result, StoreError};

/// The current schema, for a new database.
const SCHEMA: &str = include_str!("../../schema.sql");

/// `UPGRADES[i]` brings a database from version `i + 1` to `i + 2`.
const UPGRADES: &[&str] = &[
    include_str!("migrations/002_deliveries_status_check.sql"),
    include_str!("migrations/003_leases_and_fifo.sql"),
    include_str!("migrations/004_idempotency_keys.sql"),
    include_str!("migrations/005_failures_when_disabled.sql"),
    include_str!("migrations/006_key_roles.sql"),
    include_str!("migrations/007_finished_counts.sql"),
    include_str!("migrations/008_finished_counts_by_the_store.sql"),
    include_str!("migrations/009_messages.sql"),
    include_str!("migrations/010_write_probe.sql"),
    include_str!("migrations/011_blob_ids.sql"),
];

/// The version `schema.sql` describes.
const VERSION: i64 = 1 + UPGRADES.len() as i64;

/// Creates or upgrades the schema. The version is read inside an exclusive transaction, so
/// a server and a command line starting together never both migrate. Foreign keys are off
/// while it runs (an upgrade may rebuild a table that others refer to) and are checked
/// before each upgrade commits.
pub fn run(conn: &mut Connection) -> Result<()> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = migrate(conn);
    conn.pragma_update(None, "foreign_keys", true)?;
    migrated
}

fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let (sql, version) = match found {
            0 => (SCHEMA, VERSION),
            v if v > VERSION => {
                return Err(StoreError::TooNew {
                    found,
                    known: VERSION,
                });
            }
            v if v == VERSION => return Ok(()),
            v => (UPGRADES[(v - 1) as usize], v + 1),
        };
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })?;
        if broken > 0 {
            return Err(StoreError::Corrupt(format!(
                "upgrade to schema version {version} left {broken} broken references"
            )));
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "database schema at version {version}");
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{UPGRADES, VERSION, run};
    use crate::domain::{ContactId, DeliveryId, EventId, InvitationId, KeyId, SurveyId, WebhookId};

    /// Schema version 1 as it was released, kept to test the upgrades from it.
    const SCHEMA_V1: &str = include_str!("../../tests/fixtures/schema-v1.sql");

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// Every table's columns, indexes (with their columns and partial conditions) and
    /// foreign keys, in a comparable form.
    fn shape(conn: &Connection) -> Vec<String> {
        let strings = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        let mut shape = Vec::new();
        for table in strings(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ) {
            shape.extend(strings(&format!(
                "SELECT '{table} column ' || name || ' ' || type || ' ' || \"notnull\" || ' ' || \
                 coalesce(dflt_value, '-') || ' ' || pk FROM pragma_table_info('{table}') ORDER BY cid"
            )));
            shape.extend(strings(&format!(
                "SELECT '{table} fk ' || \"from\" || ' ' || \"table\" || '.' || \"to\" || ' ' || \
                 on_delete FROM pragma_foreign_key_list('{table}') ORDER BY \"from\""
            )));
            for index in strings(&format!(
                "SELECT name || ' ' || \"unique\" || ' ' || partial FROM pragma_index_list('{table}') ORDER BY name"
            )) {
                let name = index.split(' ').next().unwrap().to_owned();
                let columns = strings(&format!(
                    "SELECT coalesce(name, '?') FROM pragma_index_info('{name}') ORDER BY seqno"
                ));
                shape.push(format!("{table} index {index} ({})", columns.join(",")));
            }
        }
        shape.extend(strings(
            "SELECT name || ': ' || sql FROM sqlite_schema WHERE type = 'index' AND sql LIKE '%WHERE%' ORDER BY name",
        ));
        shape.extend(strings(
            "SELECT name || ': ' || sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name",
        ));
        shape
    }

    /// The ids of [`v1_database`]'s rows, as text: what ids were before version 11.
    const SURVEY: &str = "0190a5e2-7b1c-7000-8000-000000000001";
    const WEBHOOK: &str = "0190a5e2-7b1c-7000-8000-000000000002";
    const EVENT: &str = "0190a5e2-7b1c-7000-8000-000000000003";
    const DELIVERY: &str = "0190a5e2-7b1c-7000-8000-000000000004";
    const KEY: &str = "0190a5e2-7b1c-7000-8000-000000000005";

    /// A version-1 database with a delivery that has an attempt.
    fn v1_database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA user_version = 1;
             INSERT INTO surveys VALUES ('{SURVEY}', 'Survey', '[]', 1);
             INSERT INTO webhooks (id, survey_id, name, url, events, retry_policy, created_at, updated_at)
                 VALUES ('{WEBHOOK}', '{SURVEY}', 'HIS', 'https://his.example/hook', '[]', '[5]', 1, 1);
             INSERT INTO events VALUES ('{EVENT}', '{SURVEY}', 'survey.response_completed', '{{}}', 1);
             INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status,
                 attempt_count, next_attempt_at, created_at)
                 VALUES ('{DELIVERY}', '{WEBHOOK}', '{EVENT}', '{SURVEY}', 'survey.response_completed',
                 'pending', 1, 9, 1);
             INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code)
                 VALUES ('{DELIVERY}', 1, 2, 3, 500);
             INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ('{KEY}', 'HIS', 'h', 1);",
        ))
        .unwrap();
        conn
    }

    #[test]
    fn an_upgraded_database_has_the_shape_of_a_new_one_and_keeps_its_rows() {
        let mut old = v1_database();
        run(&mut old).unwrap();
        let mut new = Connection::open_in_memory().unwrap();
        run(&mut new).unwrap();

        assert_eq!(version(&old), VERSION);
        assert_eq!(version(&new), VERSION);
        assert_eq!(shape(&old), shape(&new));
        let delivery: DeliveryId = DELIVERY.parse().unwrap();
        let kept: (WebhookId, EventId, SurveyId, String, i64, i64) = old
            .query_row(
                "SELECT d.webhook_id, d.event_id, d.survey_id, d.status, d.next_attempt_at, \
                 a.status_code FROM deliveries d JOIN attempts a ON a.delivery_id = d.id \
                 JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id \
                 JOIN surveys s ON s.id = w.survey_id WHERE d.id = ?1",
                [delivery],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            kept,
            (
                WEBHOOK.parse().unwrap(),
                EVENT.parse().unwrap(),
                SURVEY.parse().unwrap(),
                "pending".to_owned(),
                9,
                500
            ),
            "ids are kept as their bytes, and references still join"
        );
        let role: String = old
            .query_row(
                "SELECT role FROM api_keys WHERE id = ?1",
                [KEY.parse::<KeyId>().unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            role, "admin",
            "keys stored before roles existed keep doing everything"
        );
        let refused = old.execute(
            "UPDATE deliveries SET status = 'lost' WHERE id = ?1",
            [delivery],
        );
        assert!(refused.is_err(), "the status CHECK still holds");
        let fk: bool = old
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(fk, "foreign keys are on again after migrating");
    }

    /// The last schema version with ids stored as text.
    const TEXT_IDS: i64 = 10;

    /// A database at version [`TEXT_IDS`] with a row in every table that holds ids.
    fn v10_database() -> Connection {
        let conn = v1_database();
        // As `run` does: an upgrade that rebuilds a table must not cascade into others.
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        // `UPGRADES[i]` brings version i + 1 to i + 2.
        for upgrade in &UPGRADES[..TEXT_IDS as usize - 1] {
            conn.execute_batch(upgrade).unwrap();
        }
        conn.pragma_update(None, "user_version", TEXT_IDS).unwrap();
        let id = |n: u32| format!("'0190a5e2-7b1c-7000-8000-{n:012}'");
        let (contact, distribution, invitation, response, message) =
            (id(10), id(11), id(12), id(13), id(14));
        conn.execute_batch(&format!(
            "INSERT INTO contacts (id, email, created_at, updated_at)
                 VALUES ({contact}, 'ada@clinic.example', 1, 1);
             INSERT INTO distributions (id, survey_id, channel, created_at)
                 VALUES ({distribution}, '{SURVEY}', 'email', 1);
             INSERT INTO invitations (id, distribution_id, survey_id, contact_id, token_hash,
                 created_at, expires_at)
                 VALUES ({invitation}, {distribution}, '{SURVEY}', {contact}, 't', 1, 2);
             INSERT INTO responses (id, survey_id, contact_id, invitation_id, status, started_at)
                 VALUES ({response}, '{SURVEY}', {contact}, {invitation}, 'started', 1);
             INSERT INTO messages (id, invitation_id, channel, kind, due_at, delivery_id,
                 created_at) VALUES ({message}, {invitation}, 'email', 'invitation', 1,
                 '{DELIVERY}', 1);
             INSERT INTO control_signals (webhook_id, created_at) VALUES ('{WEBHOOK}', 1);"
        ))
        .unwrap();
        conn
    }

    #[test]
    fn the_upgrade_to_blob_ids_converts_every_id_column_of_every_row() {
        let mut old = v10_database();
        run(&mut old).unwrap();
        assert_eq!(version(&old), VERSION);
        // Every id column (the columns the current schema declares BLOB, but for the
        // idempotency answers' bytes, BLOB from the start) holds a 16-byte BLOB in every
        // row: none left as text, none made NULL.
        let columns: Vec<(String, String)> = old
            .prepare(
                "SELECT t.name, c.name FROM sqlite_schema t, pragma_table_info(t.name) c \
                 WHERE t.type = 'table' AND c.type = 'BLOB' AND t.name <> 'idempotency_keys' \
                 ORDER BY 1, 2",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(columns.len(), 26, "{columns:?}");
        for (table, column) in &columns {
            let (rows, ids): (i64, i64) = old
                .query_row(
                    &format!(
                        "SELECT count(*), count(*) FILTER (WHERE typeof({column}) = 'blob' \
                         AND length({column}) = 16) FROM {table}"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert!(rows > 0, "{table} has a row to convert");
            assert_eq!(ids, rows, "{table}.{column} holds something else than ids");
        }
        let (contact, invitation): (ContactId, InvitationId) = old
            .query_row(
                "SELECT r.contact_id, m.invitation_id FROM responses r \
                 JOIN invitations i ON i.id = r.invitation_id \
                 JOIN messages m ON m.invitation_id = i.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(contact.to_string(), "0190a5e2-7b1c-7000-8000-000000000010");
        assert_eq!(
            invitation.to_string(),
            "0190a5e2-7b1c-7000-8000-000000000012"
        );
    }

    #[test]
    fn writing_a_delivery_builds_no_temporary_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        let statements = [
            "INSERT INTO deliveries (id, webhook_id, event_id, survey_id, event_type, status, \
             next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            "UPDATE deliveries SET status = ?2 WHERE id = ?1",
        ];
        for sql in statements {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
            let opcodes: Vec<String> = explain
                .query_map(rusqlite::params_from_iter(unbound), |r| r.get(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{sql} builds a temporary table per row"
            );
        }
    }

    #[test]
    fn a_database_from_a_newer_hookd_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        assert!(run(&mut conn).is_err());
    }
}
