//! Group commit: one thread owns the write connection and commits jobs in batches.
//!
//! Callers submit closures; the thread takes every job already waiting (up to
//! [`MAX_BATCH`]), runs them all in one `BEGIN IMMEDIATE` transaction, commits once, and
//! only then answers each caller. With `synchronous=FULL` the commit is durable before
//! anyone is told "done", yet a thousand acknowledgements can share one fsync.
//!
//! A job that fails must leave no trace while the others commit. Wrapping every job in a
//! savepoint would say so directly, but a savepoint copies each page it touches into a
//! sub-journal, and that copying was a fifth of the writer's time. Jobs fail rarely (a
//! conflict, a gone row), so the batch runs optimistically, without savepoints; when a job
//! fails, the whole transaction is rolled back and run again, this time with a savepoint
//! per job and without the job that failed (its error is its answer). That is why jobs are
//! `Fn`: running one again must do the same thing.
//!
//! Not every write needs its own fsync: a claim or an attempt's outcome that is lost to a
//! power cut only means the delivery is sent again (at least once still holds). Such jobs
//! are [`Durability::Relaxed`]; a batch made only of them commits with
//! `synchronous=NORMAL` (in WAL mode: no fsync, yet safe against a process crash, and
//! made durable by the next full commit). A batch with any durable job syncs.
//!
//! Durable jobs also come first when the writer is busy: while [`BUSY`] or more wait, a
//! batch takes only [`RELAXED_BESIDE_DURABLE`] relaxed ones beside them. The writer is
//! hookd's one serial resource, and a burst of acknowledgements should not queue behind
//! the engine catching up on deliveries; the engine slows down during the burst and drains
//! afterwards. Below that, everything waiting goes in, so a delivery is never held back
//! by a commit that had room for it.
//!
//! Faults stay with their job. A job that panics is caught and treated like one that
//! failed: its caller gets [`StoreError::Panicked`], the batch runs again without it, and
//! the thread goes on. When the database cannot be written (disk full, I/O error), SQLite
//! may roll the whole transaction back on its own; the writer notices (the connection is
//! back in autocommit mode), answers the batch with [`StoreError::Unavailable`], leaves
//! the connection clean for the next batch and notes the fault in [`Health`], which the
//! next successful commit clears.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::health::{HEADROOM, Health, Part};
use super::{Result, StoreError};
use timing::Batch;
pub use timing::{WriterMinute, WriterTimings};

mod job;
mod timing;

use job::{Closure, Job, run_cached};

/// Most jobs committed in one transaction; bounds the latency one batch adds to the next.
const MAX_BATCH: usize = 512;
/// Durable jobs waiting at once that mark the writer as busy (a closed loop of API clients
/// keeps ten or more waiting; a steady thousand events a second, one or two).
const BUSY: usize = 4;
/// Relaxed jobs run in a batch beside [`BUSY`] or more durable jobs: when the API's
/// writes saturate the writer, the delivery engine (whose claims and records are the
/// relaxed jobs) slows down instead of the API, yet never stops. Each of its jobs claims
/// or records many deliveries, so one per batch keeps it moving.
const RELAXED_BESIDE_DURABLE: usize = 1;
/// Jobs waiting for the writer before submitters wait (back-pressure on a full disk queue).
const QUEUE_DEPTH: usize = 8192;

/// Whether a job's commit must reach the disk before its caller is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Fsync before answering: acknowledged events, API changes.
    Durable,
    /// May ride on the next fsync: claims and attempt outcomes, which are redone if lost.
    Relaxed,
}

enum Command {
    Run(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Command>,
    /// How the last commit and checkpoint went, for readiness.
    health: Arc<Health>,
    /// What the group commits take, for `/metrics` and the queue summary.
    timings: WriterTimings,
}

impl Writer {
    /// Starts the writer thread on `conn`, with checkpoints on `checkpoint_conn`; each
    /// commit is reported to `timings`.
    pub fn start(
        conn: PooledConnection<SqliteConnectionManager>,
        checkpoint_conn: PooledConnection<SqliteConnectionManager>,
        timings: WriterTimings,
    ) -> Result<Self> {
        // The writer only appends to the WAL, and folds it in itself only if the checkpoint
        // thread falls far behind. Its page cache stays at SQLite's default (2 MiB): with
        // a 32 MiB one, every commit spent its time in `pcache1TruncateUnsafe` scanning the
        // whole cache (4.9% of hookd's CPU while delivering, 0.5% with the default), and the
        // bench measured the default faster on every figure, at half the memory (README,
        // "Performance"). The hot index pages fit, and the others come from the OS's cache.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 16384;")?;
        let health = Arc::new(match conn.path() {
            Some(file) => Health::watching(file.into(), HEADROOM),
            None => Health::default(),
        });
        let checkpointer =
            Checkpointer::start(checkpoint_conn, health.clone()).map_err(|source| {
                StoreError::DataDir {
                    path: "checkpoint thread".into(),
                    source,
                }
            })?;
        let (queue, inbox) = mpsc::channel(QUEUE_DEPTH);
        let (thread_health, thread_timings) = (health.clone(), timings.clone());
        std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || write_loop(conn, checkpointer, inbox, &thread_health, &thread_timings))
            .map_err(|source| StoreError::DataDir {
                path: "writer thread".into(),
                source,
            })?;
        Ok(Self {
            queue,
            health,
            timings,
        })
    }

    /// The group commits of the last minute.
    pub fn last_minute(&self) -> WriterMinute {
        self.timings.last_minute()
    }

    /// Whether the database could be written when last tried (see `Health`), and the
    /// writer thread runs.
    pub fn writable(&self) -> bool {
        !self.queue.is_closed() && self.health.writable()
    }

    pub async fn submit<T, F>(&self, durability: Durability, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Closure::new(durability, work, reply);
        self.queue
            .send(Command::Run(Box::new(job)))
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }

    /// Commits what was submitted before this call, then stops the thread.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Command::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn write_loop(
    conn: PooledConnection<SqliteConnectionManager>,
    checkpointer: Checkpointer,
    mut inbox: mpsc::Receiver<Command>,
    health: &Health,
    timings: &WriterTimings,
) {
    let mut queue = Queue::default();
    let mut closing = None;
    // The synchronous level the connection is at (unknown until the first batch sets it).
    let mut level = None;
    loop {
        if queue.is_empty() && closing.is_none() {
            match inbox.blocking_recv() {
                Some(command) => queue.add(command, &mut closing),
                None => break,
            }
        }
        while queue.durable.len() < MAX_BATCH && closing.is_none() {
            match inbox.try_recv() {
                Ok(command) => queue.add(command, &mut closing),
                Err(_) => break,
            }
        }
        if queue.is_empty() {
            break;
        }
        let waiting = queue.durable.len() + queue.relaxed.len();
        let mut batch = queue.next_batch();
        if let Some(committed) = commit_batch(&conn, &mut batch, &mut level, health) {
            timings.record(&Batch {
                waiting,
                ..committed
            });
        }
    }
    drop(checkpointer);
    // Leave a tidy, fully synced file behind: the WAL folded into the database.
    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(%error, "final checkpoint failed; the WAL is replayed at the next start");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Jobs received and not yet run, by durability.
#[derive(Default)]
struct Queue {
    durable: VecDeque<Box<dyn Job>>,
    relaxed: VecDeque<Box<dyn Job>>,
}

impl Queue {
    fn add(&mut self, command: Command, closing: &mut Option<oneshot::Sender<()>>) {
        match command {
            Command::Run(job) if job.durability() == Durability::Durable => {
                self.durable.push_back(job)
            }
            Command::Run(job) => self.relaxed.push_back(job),
            Command::Close(done) => *closing = Some(done),
        }
    }

    fn is_empty(&self) -> bool {
        self.durable.is_empty() && self.relaxed.is_empty()
    }

    /// Every waiting durable job (up to [`MAX_BATCH`]) and the relaxed ones that fit; when
    /// the writer is busy ([`BUSY`] durable jobs or more), only [`RELAXED_BESIDE_DURABLE`]
    /// of them: acknowledgements first, the engine's bookkeeping with what is left, and
    /// never starved.
    fn next_batch(&mut self) -> Vec<Box<dyn Job>> {
        let durable = self.durable.len().min(MAX_BATCH);
        let room = if durable >= BUSY {
            RELAXED_BESIDE_DURABLE
        } else {
            MAX_BATCH - durable
        };
        let relaxed = self.relaxed.len().min(room);
        let mut batch = Vec::with_capacity(durable + relaxed);
        batch.extend(self.relaxed.drain(..relaxed));
        batch.extend(self.durable.drain(..durable));
        batch
    }
}

/// Runs and commits a batch and answers its callers; returns what the commit took.
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<Box<dyn Job>>,
    level: &mut Option<Durability>,
    health: &Health,
) -> Option<Batch> {
    if batch.is_empty() {
        return None;
    }
    let changes = conn.total_changes();
    let commit = run_batch(conn, batch, level);
    match &commit {
        // Only a commit that wrote shows the disk can take writes: one that changed nothing
        // (an empty claim, a lookup) needs no space and goes through on a full disk.
        Ok(_) if conn.total_changes() > changes => health.note(Part::Writer, Ok(())),
        Ok(_) => {}
        Err(error) => {
            // A failed COMMIT may leave the transaction open (SQLite rolls back by itself
            // only on some errors); the next batch needs a clean connection either way.
            if !conn.is_autocommit()
                && let Err(rollback) = conn.execute_batch("ROLLBACK")
            {
                tracing::error!(error = %rollback, "could not roll back a failed batch");
            }
            if error.is_unavailable() {
                health.note(Part::Writer, Err(error));
            } else {
                tracing::error!(%error, "group commit failed; every job of the batch is answered with the error");
            }
        }
    }
    for job in batch.drain(..) {
        job.finish(match &commit {
            Ok(_) => Ok(()),
            Err(error) => Err(each(error)),
        });
    }
    commit.ok()
}

/// One caller's copy of the batch's error (SQLite's errors are not `Clone`), keeping its
/// kind: a full disk stays [`StoreError::Unavailable`], a constraint stays a constraint.
fn each(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(reason) => StoreError::Unavailable(reason.clone()),
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("commit failed: {other}")),
        )),
    }
}

/// SQLite rolled the batch's transaction back by itself (it does so on a full disk or an
/// I/O error): whatever ran is gone, and statements would now commit one by one.
fn transaction_lost() -> StoreError {
    StoreError::Unavailable("the transaction was rolled back after a failed write".into())
}

/// Runs the batch in one transaction and commits it; answers what that took (the jobs
/// waiting are for the caller to fill in).
fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    level: &mut Option<Durability>,
) -> Result<Batch> {
    let wanted = if batch
        .iter()
        .any(|job| job.durability() == Durability::Durable)
    {
        Durability::Durable
    } else {
        Durability::Relaxed
    };
    // Chosen outside the transaction (SQLite reads it when the transaction begins), and
    // only when it changes: setting it costs a statement preparation.
    if *level != Some(wanted) {
        conn.execute_batch(match wanted {
            Durability::Durable => "PRAGMA synchronous = FULL",
            Durability::Relaxed => "PRAGMA synchronous = NORMAL",
        })?;
        *level = Some(wanted);
    }
    let (began, jobs) = (Instant::now(), batch.len());
    let commit = |work: Duration| -> Result<Batch> {
        let committing = Instant::now();
        run_cached(conn, "COMMIT")?;
        Ok(Batch {
            waiting: 0,
            jobs,
            durability: wanted,
            work,
            commit: committing.elapsed(),
        })
    };
    run_cached(conn, "BEGIN IMMEDIATE")?;
    // Stops at the first job that fails, and at one after which SQLite rolled back.
    if batch
        .iter_mut()
        .all(|job| job.run(conn, false) && !conn.is_autocommit())
    {
        return commit(began.elapsed());
    }
    // A job failed, part-way perhaps: undo the batch and run it again without that job,
    // each job in its own savepoint now, since another may fail too.
    if !conn.is_autocommit() {
        run_cached(conn, "ROLLBACK")?;
    }
    run_cached(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut().filter(|job| !job.failed()) {
        job.run(conn, true);
        if conn.is_autocommit() {
            return Err(transaction_lost());
        }
    }
    commit(began.elapsed())
}

#[cfg(test)]
mod tests;
