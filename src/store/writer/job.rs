//! The writer's jobs: a caller's closure with its reply channel, run inside the batch
//! transaction (perhaps twice, see [`super`]), a panic in it caught and turned into an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Durability;
use crate::store::{Result, StoreError};

/// One unit of work: runs inside the batch transaction (perhaps twice, see the module
/// documentation), then learns how the commit went.
pub(super) trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs the work and keeps its outcome; answers whether it succeeded. With `isolated`,
    /// the work runs in a savepoint that is rolled back if it fails.
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Whether the work has failed (it is then not run again).
    fn failed(&self) -> bool;
    fn finish(self: Box<Self>, commit: Result<()>);
}

pub(super) struct Closure<T, F> {
    durability: Durability,
    work: F,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Closure<T, F> {
    /// A job that runs `work` and answers on `reply` once its batch is committed.
    pub(super) fn new(durability: Durability, work: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Self {
            durability,
            work,
            outcome: None,
            reply,
        }
    }
}

impl<T, F> Job for Closure<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection, isolated: bool) -> bool {
        let work = |conn: &Connection| unwound(&self.work, conn);
        let outcome = if isolated {
            in_savepoint(conn, work)
        } else {
            work(conn)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn failed(&self) -> bool {
        matches!(self.outcome, Some(Err(_)))
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let answer = match (commit, self.outcome) {
            // A job that failed is answered with its error whatever became of the others.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(outcome)) => outcome,
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::WriterClosed),
        };
        let _ = self.reply.send(answer);
    }
}

/// Runs `work`, turning a panic into an error: a bug in one job must not take the writer
/// thread, and with it every later write, down. What the job did before it panicked is
/// undone by whoever runs it (the batch's rollback, or its savepoint's).
fn unwound<T>(work: impl Fn(&Connection) -> Result<T>, conn: &Connection) -> Result<T> {
    // Unwind safety: the connection is rolled back by the caller, and `work` is not run
    // again once it has failed.
    catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
        tracing::error!("a database job panicked; its caller is answered with an error");
        Err(StoreError::Panicked)
    })
}

fn in_savepoint<T>(conn: &Connection, work: impl Fn(&Connection) -> Result<T>) -> Result<T> {
    run_cached(conn, "SAVEPOINT job")?;
    match work(conn) {
        Ok(value) => {
            run_cached(conn, "RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            // A full disk may have taken the whole transaction, the savepoint with it.
            if !conn.is_autocommit() {
                run_cached(conn, "ROLLBACK TO job")?;
                run_cached(conn, "RELEASE job")?;
            }
            Err(e)
        }
    }
}

/// Runs a fixed statement from the statement cache (no parsing on the hot path).
pub(super) fn run_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
