//! WAL checkpoints on their own thread, so the writer never stops to copy the log back
//! into the database: it only appends, and this thread folds the WAL in behind it
//! (`PASSIVE`: it never blocks the writer or readers).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;

/// How often the WAL is folded in. Short enough that the WAL stays a few MiB under load.
const INTERVAL: Duration = Duration::from_millis(250);

/// The running checkpoint thread; dropping it stops the thread and waits for it.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(conn: PooledConnection<SqliteConnectionManager>) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hookd-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(%error, "WAL checkpoint failed; trying again shortly");
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
