//! What the writer's group commits take, for operators who want to see it saturate.
//!
//! Each batch is reported twice: to `/metrics` as histograms (jobs waiting when it began,
//! jobs in it, time its jobs took, time its `COMMIT` took by durability), and into a
//! one-minute window that the queue summary turns into one line ("0.4 ms commits, 12 per
//! batch"). A durable commit includes the WAL's fsync (`synchronous=FULL`); a relaxed one
//! does none, so the gap between the two histograms is what the fsync costs.
//!
//! The window is sixty one-second slots written by the writer thread alone; a reader sums
//! the slots of the last minute under the same lock, taken once per batch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use super::Durability;
use crate::telemetry::Telemetry;

/// Seconds in the window of [`WriterTimings::last_minute`].
const WINDOW_SECS: u64 = 60;

/// One group commit, as the writer thread saw it.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Jobs waiting when the batch was formed, this batch's included.
    pub waiting: usize,
    pub jobs: usize,
    pub durability: Durability,
    /// Running the jobs, from `BEGIN` to just before `COMMIT`.
    pub work: Duration,
    /// The `COMMIT` (with the fsync when durable).
    pub commit: Duration,
}

/// The last minute of group commits, for the queue summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriterMinute {
    pub batches: u64,
    pub jobs: u64,
    /// Jobs per batch, on average.
    pub jobs_per_batch: f64,
    /// Mean time of a `COMMIT`, durable and relaxed together, in milliseconds.
    pub commit_ms: f64,
    /// Mean time of a durable `COMMIT` (the fsync included), in milliseconds.
    pub durable_commit_ms: Option<f64>,
    /// The most jobs waiting at once.
    pub most_waiting: u64,
}

/// One second of the window.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Which second since the start this slot holds; stale slots are skipped.
    second: u64,
    batches: u64,
    jobs: u64,
    commit: Duration,
    durable_batches: u64,
    durable_commit: Duration,
    most_waiting: u64,
}

/// The writer's reports: metrics and the one-minute window. Cheap to clone.
#[derive(Clone)]
pub struct WriterTimings {
    telemetry: Telemetry,
    started: Instant,
    slots: Arc<Mutex<[Slot; WINDOW_SECS as usize]>>,
}

impl WriterTimings {
    pub fn new(telemetry: Telemetry) -> Self {
        Self {
            telemetry,
            started: Instant::now(),
            slots: Arc::new(Mutex::new([Slot::default(); WINDOW_SECS as usize])),
        }
    }

    /// Reports a committed batch.
    pub fn record(&self, batch: &Batch) {
        self.telemetry.writer_batch(
            batch.waiting,
            batch.jobs,
            batch.durability == Durability::Durable,
            batch.work,
            batch.commit,
        );
        let second = self.started.elapsed().as_secs();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[(second % WINDOW_SECS) as usize];
        if slot.second != second {
            *slot = Slot {
                second,
                ..Slot::default()
            };
        }
        slot.batches += 1;
        slot.jobs += batch.jobs as u64;
        slot.commit += batch.commit;
        if batch.durability == Durability::Durable {
            slot.durable_batches += 1;
            slot.durable_commit += batch.commit;
        }
        slot.most_waiting = slot.most_waiting.max(batch.waiting as u64);
    }

    /// The group commits of the last minute (all zero when there were none).
    pub fn last_minute(&self) -> WriterMinute {
        let now = self.started.elapsed().as_secs();
        let slots = *self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let recent = slots
            .iter()
            .filter(|s| s.batches > 0 && now - s.second < WINDOW_SECS);
        let mut total = Slot::default();
        for slot in recent {
            total.batches += slot.batches;
            total.jobs += slot.jobs;
            total.commit += slot.commit;
            total.durable_batches += slot.durable_batches;
            total.durable_commit += slot.durable_commit;
            total.most_waiting = total.most_waiting.max(slot.most_waiting);
        }
        let mean_ms = |sum: Duration, n: u64| sum.as_secs_f64() * 1000.0 / n as f64;
        if total.batches == 0 {
            return WriterMinute::default();
        }
        WriterMinute {
            batches: total.batches,
            jobs: total.jobs,
            jobs_per_batch: total.jobs as f64 / total.batches as f64,
            commit_ms: mean_ms(total.commit, total.batches),
            durable_commit_ms: (total.durable_batches > 0)
                .then(|| mean_ms(total.durable_commit, total.durable_batches)),
            most_waiting: total.most_waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(jobs: usize, durability: Durability, commit_us: u64) -> Batch {
        Batch {
            waiting: jobs + 1,
            jobs,
            durability,
            work: Duration::from_micros(100),
            commit: Duration::from_micros(commit_us),
        }
    }

    #[test]
    fn the_last_minute_sums_batches_and_averages_their_commits() {
        let timings = WriterTimings::new(Telemetry::new());
        assert_eq!(timings.last_minute(), WriterMinute::default());
        timings.record(&batch(10, Durability::Durable, 2000));
        timings.record(&batch(2, Durability::Relaxed, 1000));
        let minute = timings.last_minute();
        assert_eq!((minute.batches, minute.jobs), (2, 12));
        assert!((minute.jobs_per_batch - 6.0).abs() < 1e-9);
        assert!((minute.commit_ms - 1.5).abs() < 1e-9);
        assert_eq!(minute.durable_commit_ms, Some(2.0));
        assert_eq!(minute.most_waiting, 11);
    }

    #[test]
    fn each_batch_reaches_the_metrics() {
        let telemetry = Telemetry::new();
        let timings = WriterTimings::new(telemetry.clone());
        timings.record(&batch(3, Durability::Durable, 500));
        let text = telemetry.render();
        for name in [
            "hookd_writer_waiting_jobs_count 1",
            "hookd_writer_batch_jobs_count 1",
            "hookd_writer_work_seconds_count 1",
            "hookd_writer_commit_seconds_count{durability=\"durable\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
