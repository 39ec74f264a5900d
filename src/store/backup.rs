//! Online backup: a consistent copy of the database while a server keeps using it, through
//! SQLite's backup API.
//!
//! The source connection holds one read transaction for the whole copy. In WAL mode that
//! never blocks the server's writes, and it pins the snapshot being copied: without it, every
//! commit of the running server would make SQLite restart the backup from the first page,
//! and a busy server could keep a backup from ever finishing.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::{Result, StoreError};

/// How the copy is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Pages copied per step.
    pub pages_per_step: i32,
    /// Pause between steps, so the copy leaves the disk to the server now and then.
    pub pause: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            pages_per_step: 1024,
            pause: Duration::from_millis(5),
        }
    }
}

/// Copies the database of `source` into a new file `dest` (which must not exist yet) and
/// checks the copy. The copy is a self-contained file in rollback-journal mode: it needs
/// no `-wal` file beside it. Returns the number of pages copied.
pub fn backup_to(source: &Connection, dest: &Path, pace: Pace) -> Result<i32> {
    let mut target = Connection::open(dest)?;
    // Pin the snapshot: a deferred transaction becomes a read transaction at its first read.
    source.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")?;
    let copied = copy(source, &mut target, pace);
    let ended = source.execute_batch("COMMIT");
    let pages = copied?;
    ended?;
    target.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = target.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the copy failed its check: {check}"
        )));
    }
    target
        .close()
        .map_err(|(_, error)| StoreError::from(error))?;
    Ok(pages)
}

fn copy(source: &Connection, target: &mut Connection, pace: Pace) -> Result<i32> {
    let backup = Backup::new(source, target)?;
    loop {
        match backup.step(pace.pages_per_step)? {
            StepResult::Done => return Ok(backup.progress().pagecount),
            // More to copy, or Busy/Locked (transient: the target is ours alone).
            _ => std::thread::sleep(pace.pause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        )
        .unwrap();
        for _ in 0..200 {
            conn.execute("INSERT INTO t (body) VALUES (hex(randomblob(2000)))", [])
                .unwrap();
        }
        conn
    }

    #[test]
    fn a_backup_finishes_page_by_page_while_another_connection_keeps_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.db");
        let conn = source(&path);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started, writing) = std::sync::mpsc::channel();
        let writer = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.execute("INSERT INTO t (body) VALUES ('more')", [])
                        .unwrap();
                    let _ = started.send(());
                }
            })
        };
        writing.recv().unwrap();
        let dest = dir.path().join("copy.db");
        let pace = Pace {
            pages_per_step: 1,
            pause: Duration::from_millis(1),
        };
        let pages = backup_to(&conn, &dest, pace).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert!(pages > 50, "{pages} pages");
        let copy = Connection::open(&dest).unwrap();
        let rows: i64 = copy
            .query_row("SELECT count(*) FROM t WHERE body <> 'more'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 200);
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
    }
}
