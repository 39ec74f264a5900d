//! The store: the only room that speaks SQL.
//!
//! Every table lives in one SQLite file (`schema.sql`). Reads run on a small r2d2 pool;
//! writes go through one writer thread that commits them in groups (see `writer`), so a
//! burst of API calls or delivery outcomes shares one fsync'd commit instead of paying one
//! each. The submodules are plain synchronous functions on a `&Connection`, named for
//! intent; the async [`Store`] runs them off the executor threads, and the command line
//! calls them directly.

mod checkpoint;
mod health;
mod migrate;
mod writer;

pub mod audit;
pub mod backup;
pub mod claims;
pub mod contacts;
pub mod control;
pub mod deliveries;
pub mod delivery_log;
pub mod idempotency;
pub mod invitations;
pub mod keys;
pub mod messages;
pub mod notices;
pub mod overview;
pub mod repairs;
pub mod retention;
pub mod surveys;
pub mod webhooks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::domain::SurveyId;
use crate::telemetry::Telemetry;

pub use writer::{Durability, Writer, WriterMinute, WriterTimings};

/// Errors of the storage layer. The API maps them to its own error enum.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Any other SQLite error: a constraint, a malformed statement, a corrupt file.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The database cannot be written (or read) right now: the disk is full, an I/O error,
    /// the file cannot be opened or is read-only, or another process holds it locked past
    /// the busy timeout. Nothing was changed; the same request may succeed later.
    #[error("the database cannot be written right now: {0}")]
    Unavailable(String),
    /// A database job panicked (a bug). Only that job's caller gets this; its changes were
    /// rolled back and the store carries on.
    #[error("a database job panicked")]
    Panicked,
    #[error("connection pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the database writer has stopped")]
    WriterClosed,
    #[error("the data directory {path} cannot be used: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database was written by a newer hookd (schema version {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    /// A value refers to something that does not exist (a 422 on `field`).
    #[error("{field} {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The row named does not exist (or not under the parent named).
    #[error("not found")]
    NotFound,
    /// A limit or a state forbids the change; `code` is the API's stable error code.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// What a task doing store work ended with when it did not return: it panicked, or
    /// it was cancelled because the runtime (and the store with it) is shutting down.
    pub fn from_join(error: tokio::task::JoinError) -> Self {
        if error.is_panic() {
            Self::Panicked
        } else {
            Self::WriterClosed
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Sqlite(error)
        }
    }
}

impl StoreError {
    /// Whether this error says the database cannot be written, rather than that this one
    /// request was wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// SQLite's result codes for "the storage under the database is failing", as opposed to
/// "this statement or this data is wrong". Extended codes (`SQLITE_IOERR_WRITE`,
/// `SQLITE_READONLY_DBMOVED`, ...) share their primary code.
fn is_unavailable(error: &rusqlite::Error) -> bool {
    use rusqlite::ffi::ErrorCode;
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DatabaseBusy
        )
    )
}

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// How many read connections the pool keeps beside the writer's and the checkpointer's.
const READ_CONNECTIONS: u32 = 6;

/// Handle to the database: a read pool and the group-commit writer. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    writer: Writer,
    surveys: Arc<surveys::Cache>,
}

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("hookd.db")
}

/// Opens (creating if needed) the database of `data_dir` and brings its schema up to date.
pub fn open_pool(data_dir: &Path) -> Result<Pool> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    // WAL mode is a property of the file: set it once, before several pooled connections
    // race to set it on a new database.
    configure(&mut Connection::open(database_path(data_dir))?)?;
    let manager = SqliteConnectionManager::file(database_path(data_dir)).with_init(configure);
    let pool = r2d2::Pool::builder()
        .max_size(READ_CONNECTIONS + 2)
        // A connection to a local file does not go stale; testing each one on every
        // check-out ran a statement per read for nothing.
        .test_on_check_out(false)
        .build(manager)?;
    migrate::run(&mut *pool.get()?)?;
    Ok(pool)
}

/// Prepared statements kept per connection (hookd has fewer distinct statements than this).
const STATEMENT_CACHE: usize = 256;

/// Per-connection settings. `synchronous=FULL` makes every commit durable before the API
/// answers; group commit (the writer) is what keeps that affordable.
fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    // Room for every statement hookd runs: rusqlite's default (16) is smaller than the
    // writer's working set, and an evicted statement is parsed again at its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans must not depend on bound values: otherwise SQLite prepares a statement again
    // whenever a value it looked at changes (the claim query did so on every call).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;")
}

impl Store {
    /// Opens the store of a data directory and starts its writer thread, which reports its
    /// commits to `telemetry`.
    pub fn open(data_dir: &Path, telemetry: &Telemetry) -> Result<Self> {
        let pool = open_pool(data_dir)?;
        let timings = WriterTimings::new(telemetry.clone());
        let writer = Writer::start(pool.get()?, pool.get()?, timings)?;
        Ok(Self {
            pool,
            writer,
            surveys: Arc::default(),
        })
    }

    /// A survey, from memory after its first read: surveys never change once created
    /// (nothing updates or deletes them), and every kiosk submission needs its questions.
    pub async fn survey(&self, id: SurveyId) -> Result<Arc<surveys::Survey>> {
        if let Some(survey) = self.surveys.get(id) {
            return Ok(survey);
        }
        let survey = Arc::new(self.read(move |c| surveys::get(c, id)).await?);
        self.surveys.insert(survey.clone());
        Ok(survey)
    }

    /// Whether a pooled connection answers a query (readiness).
    pub async fn check_readable(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// Runs a read on a pooled connection, off the async executor.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&*pool.get()?))
            .await
            .map_err(StoreError::from_join)?
    }

    /// Runs `f` inside the writer's next group transaction and answers once that
    /// transaction is durably committed. An error from `f` rolls back `f` alone.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.submit(Durability::Durable, f).await
    }

    /// Like [`Store::write`], for writes that are redone if a power cut loses them (claims,
    /// attempt outcomes): committed, but without waiting for an fsync of their own.
    pub async fn write_relaxed<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.submit(Durability::Relaxed, f).await
    }

    /// Whether the database could be written when last tried: the last commit and the
    /// last checkpoint went through, and the writer runs. Costs no I/O.
    pub fn writable(&self) -> bool {
        self.writer.writable()
    }

    /// The writer's group commits of the last minute (for the queue summary).
    pub fn writer_last_minute(&self) -> WriterMinute {
        self.writer.last_minute()
    }

    /// Tries a write that needs the disk: a commit that changes the one row of
    /// `write_probe`, which appends a page to the WAL and syncs it. Succeeding clears a noted
    /// fault when no client has written since the disk came back.
    pub async fn probe_write(&self) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached("UPDATE write_probe SET probed_at = ?1 WHERE id = 1")?
                .execute([crate::domain::time::now_ms()])?;
            Ok(())
        })
        .await
    }

    /// Stops the writer after it has committed everything submitted so far.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    /// A pooled connection for synchronous callers (backup, tests).
    pub fn connection(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }
}

/// Reads a JSON column written by hookd.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Writes a JSON column.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data always serialises")
}

/// Writes JSON that is usually near half a kilobyte (an event's payload, an API answer)
/// into a kilobyte from the start: [`to_json`] begins at `serde_json`'s 128 bytes and would
/// grow three times on the way.
pub(crate) fn to_json_with_room<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let mut text = Vec::with_capacity(1024);
    serde_json::to_writer(&mut text, value).expect("plain data always serialises");
    String::from_utf8(text).expect("serde_json writes UTF-8")
}

// Ids in SQL are their 16 bytes (`domain::ids` binds them so). A list in id order with
// no cursor starts from `id > coalesce(?, X'')`: the empty BLOB sorts before every id.

/// A list of ids to bind as one parameter: a JSON array of their text. A statement reads
/// it with `json_each(?)` and turns each item back into the stored 16 bytes with
/// `unhex(value, '-')`.
pub(crate) fn id_list<T: fmt::Display>(ids: &[T]) -> String {
    to_json(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// A standalone connection to the database of `data_dir` (created if needed) with the
/// schema up to date and the store's connection settings: the command line's way in.
pub fn open_standalone(data_dir: &Path) -> Result<Connection> {
    open_pool(data_dir)?;
    let mut conn = Connection::open(database_path(data_dir))?;
    configure(&mut conn)?;
    Ok(conn)
}

/// Runs `f` in one immediate transaction on a standalone connection: the command line's
/// way to write while a server may be running (SQLite's busy timeout arbitrates).
pub fn with_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use rusqlite::config::DbConfig;

    use super::{Store, StoreError};

    #[test]
    fn a_full_disk_or_an_io_error_is_unavailable_and_a_bad_row_is_not() {
        use rusqlite::ffi;
        let error =
            |code| StoreError::from(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None));
        for code in [
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR_WRITE,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_CANTOPEN,
            ffi::SQLITE_READONLY,
            ffi::SQLITE_BUSY,
        ] {
            assert!(error(code).is_unavailable(), "{code}");
        }
        for code in [ffi::SQLITE_CONSTRAINT_UNIQUE, ffi::SQLITE_CORRUPT] {
            assert!(!error(code).is_unavailable(), "{code}");
        }
    }

    #[tokio::test]
    async fn every_connection_keeps_one_plan_per_statement_whatever_the_values_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::telemetry::Telemetry::new()).unwrap();
        let conn = store.connection().unwrap();
        // Plans that look at bound values are prepared again whenever those values change.
        assert!(
            conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                .unwrap()
        );
        store.close().await;
    }
}
