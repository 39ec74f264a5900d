//! Whether the database could be written the last time it was tried.
//!
//! The writer and the checkpoint thread each note how their last try went; readiness reads
//! it. Writes never consult it (each write simply tries, so the first one after a fault
//! clears it), which keeps the hot path to one atomic load per batch.
//!
//! Both count, because in WAL mode a full disk shows itself in two steps: a commit only
//! appends to the WAL, and a WAL that has been folded back into the database is reused
//! from its start, so commits can go on for a while without a byte of new space. The
//! checkpoint that folds the WAL in, however, must grow the database file; when it cannot,
//! the WAL can no longer be reused and grows until commits fail too. A failing checkpoint
//! is the early sign, a failing commit the fault itself.
//!
//! A fault noted for want of disk clears only when a write that needed the disk goes
//! through *and* the file system has [`HEADROOM`] free. Without the second condition a
//! full disk flaps: a write that failed half-way leaves the WAL file longer than its last
//! good frame, and a smaller write then fits in that space, so readiness would come back
//! while the next ordinary write is refused again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// The free space a file system needs before a noted fault clears: a few WAL's worth of
/// writes (the WAL stays a few MiB under load), nothing next to a real disk.
pub const HEADROOM: u64 = 4 << 20;

/// The part of the store that writes: the writer thread or the checkpoint thread.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Writer,
    Checkpoint,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Writer => "commits",
            Self::Checkpoint => "checkpoints",
        }
    }
}

/// Shared between the writer, the checkpoint thread and the [`super::Store`] handles.
#[derive(Debug, Default)]
pub struct Health {
    /// The last batch failed because the database could not be written.
    writer_failing: AtomicBool,
    /// The last checkpoint failed because the database could not be written.
    checkpoint_failing: AtomicBool,
    /// A file on the database's file system and the free space it must have for a fault
    /// to clear; `None` clears a fault on the first write that goes through.
    room: Option<(PathBuf, u64)>,
}

impl Health {
    /// Health whose faults clear only while the file system holding `file` has `headroom`
    /// bytes free.
    pub fn watching(file: PathBuf, headroom: u64) -> Self {
        Self {
            room: Some((file, headroom)),
            ..Self::default()
        }
    }

    /// Whether the database's file system has the headroom to clear a fault. A file system
    /// that cannot be asked does not hold a recovery back: the write went through.
    fn has_room(&self) -> bool {
        let Some((file, headroom)) = &self.room else {
            return true;
        };
        match rustix::fs::statvfs(file) {
            Ok(fs) => fs.f_bavail.saturating_mul(fs.f_frsize) >= *headroom,
            Err(_) => true,
        }
    }

    /// Whether the last commit and the last checkpoint both went through.
    pub fn writable(&self) -> bool {
        !self.writer_failing.load(Ordering::Acquire)
            && !self.checkpoint_failing.load(Ordering::Acquire)
    }

    /// Notes a try of `part`: `Err` carries the reason the database could not be written.
    /// Logs only the changes, so a fault that lasts an hour is two lines, not thousands.
    pub fn note(&self, part: Part, outcome: Result<(), &dyn std::fmt::Display>) {
        let flag = match part {
            Part::Writer => &self.writer_failing,
            Part::Checkpoint => &self.checkpoint_failing,
        };
        let failing = outcome.is_err();
        // A load first: the usual case (no change) then never writes the shared line.
        if flag.load(Ordering::Acquire) == failing {
            return;
        }
        if !failing && !self.has_room() {
            return;
        }
        if flag.swap(failing, Ordering::AcqRel) == failing {
            return;
        }
        match outcome {
            Err(error) => tracing::error!(%error, part = part.name(),
                "the database cannot be written; writes are refused with 503 until it can"),
            Ok(()) => tracing::info!(part = part.name(), "the database can be written again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Health, Part};

    fn fail(health: &Health) {
        health.note(Part::Writer, Err(&"disk full" as &dyn std::fmt::Display));
    }

    #[test]
    fn a_fault_clears_only_with_headroom_on_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let cramped = Health::watching(dir.path().to_owned(), u64::MAX);
        fail(&cramped);
        cramped.note(Part::Writer, Ok(()));
        assert!(
            !cramped.writable(),
            "a write went through, but the disk is still full"
        );

        let roomy = Health::watching(dir.path().to_owned(), 1);
        fail(&roomy);
        roomy.note(Part::Writer, Ok(()));
        assert!(roomy.writable());
    }
}
