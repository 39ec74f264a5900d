//! WAL checkpoints on their own thread, so the writer never stops to copy the log back
//! into the database: it only appends, and this thread folds the WAL in behind it
//! (`PASSIVE`: it never blocks the writer or readers). Folding in may need the database
//! file to grow, so this is where a full disk shows first (see [`super::health`]).

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;

use super::StoreError;
use super::health::{Health, Part};

/// How often the WAL is folded in. Short enough that the WAL stays a few MiB under load.
const INTERVAL: Duration = Duration::from_millis(250);

/// The running checkpoint thread; dropping it stops the thread and waits for it.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; it notes in `health` whether the database file could be written.
    pub fn start(
        conn: PooledConnection<SqliteConnectionManager>,
        health: Arc<Health>,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hookd-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    match conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        Ok(()) => health.note(Part::Checkpoint, Ok(())),
                        Err(error) => match StoreError::from(error) {
                            // Said once by `health`, not four times a second.
                            error @ StoreError::Unavailable(_) => {
                                health.note(Part::Checkpoint, Err(&error))
                            }
                            error => {
                                tracing::warn!(%error, "WAL checkpoint failed; trying again shortly")
                            }
                        },
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
