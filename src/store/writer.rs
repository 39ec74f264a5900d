//! Group commit: one thread owns the write connection and commits jobs in batches.
//!
//! Callers submit closures; the thread takes every job already waiting (up to
//! [`MAX_BATCH`]), runs each inside its own savepoint of one `BEGIN IMMEDIATE` transaction,
//! commits once, and only then answers each caller. A job's error rolls back that job's
//! savepoint alone. With `synchronous=FULL` the commit is durable before anyone is told
//! "done", yet a thousand acknowledgements can share one fsync.

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{Result, StoreError};

/// Most jobs committed in one transaction; bounds the latency one batch adds to the next.
const MAX_BATCH: usize = 512;
/// Jobs waiting for the writer before submitters wait (back-pressure on a full disk queue).
const QUEUE_DEPTH: usize = 8192;

/// One unit of work: runs inside the batch transaction, then learns how the commit went.
trait Job: Send {
    fn run(&mut self, conn: &Connection);
    fn finish(self: Box<Self>, commit: Result<()>);
}

struct Closure<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Closure<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) {
        let Some(work) = self.work.take() else { return };
        let outcome = in_savepoint(conn, work);
        self.outcome = Some(outcome);
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let answer = match (commit, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::WriterClosed),
        };
        let _ = self.reply.send(answer);
    }
}

fn in_savepoint<T>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match work(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

enum Command {
    Run(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Command>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: PooledConnection<SqliteConnectionManager>) -> Result<Self> {
        let (queue, inbox) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || write_loop(conn, inbox))
            .map_err(|source| StoreError::DataDir {
                path: "writer thread".into(),
                source,
            })?;
        Ok(Self { queue })
    }

    pub async fn submit<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Closure {
            work: Some(work),
            outcome: None,
            reply,
        };
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

fn write_loop(conn: PooledConnection<SqliteConnectionManager>, mut inbox: mpsc::Receiver<Command>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = inbox.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Run(job) => batch.push(job),
                Command::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        commit_batch(&conn, &mut batch);
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

fn commit_batch(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    if batch.is_empty() {
        return;
    }
    let commit = run_batch(conn, batch);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %commit.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            "group commit failed; every job of the batch is answered with the error");
    }
    for job in batch.drain(..) {
        let commit = match &commit {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Corrupt(format!("commit failed: {e}"))),
        };
        job.finish(commit);
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.run(conn);
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}
