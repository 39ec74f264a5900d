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
                let mut wal = WalProgress::default();
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get(1)?, row.get(2)?))
                    });
                    match frames {
                        Ok((log, folded)) => {
                            // Folding in nothing (readers held it, or nothing was new) wrote
                            // nothing, so it cannot show that the disk takes writes again.
                            if wal.moved(log, folded) {
                                health.note(Part::Checkpoint, Ok(()))
                            }
                        }
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

/// The WAL's frames as the last checkpoint left them: how many it held and how many of
/// them were folded into the database.
#[derive(Debug, Default)]
struct WalProgress {
    last: (i64, i64),
}

impl WalProgress {
    /// Whether a checkpoint that left `log` frames in the WAL, `folded` of them folded in,
    /// folded in any since the last one. A WAL restarted from its start counts anew, unless
    /// it came back to exactly the last counts: that pass is missed, and the next commit
    /// changes them.
    fn moved(&mut self, log: i64, folded: i64) -> bool {
        let moved = folded > 0 && (log, folded) != self.last;
        self.last = (log, folded);
        moved
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

#[cfg(test)]
mod tests {
    use super::WalProgress;

    #[test]
    fn only_a_checkpoint_that_folded_frames_in_counts_as_a_write() {
        let mut wal = WalProgress::default();
        assert!(!wal.moved(0, 0), "an empty WAL");
        assert!(wal.moved(10, 4), "four frames folded in");
        assert!(
            !wal.moved(10, 4),
            "a reader held the rest back: nothing new"
        );
        assert!(wal.moved(10, 10), "the rest");
        assert!(!wal.moved(10, 10), "nothing new was committed");
        assert!(wal.moved(3, 3), "the WAL restarted from its start");
    }
}
