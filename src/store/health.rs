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

use std::sync::atomic::{AtomicBool, Ordering};

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
}

impl Health {
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
