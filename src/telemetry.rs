//! Metrics and logging set-up. Metrics go to a Prometheus recorder owned by this server
//! instance (not a process-global one), so several servers can run in one test process.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Unit, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::config::LogFormat;

/// Attempt-duration buckets in seconds: loopback receivers to the 10 s default timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of the writer's timings in seconds: a relaxed commit takes tens of
/// microseconds, a durable one (with its fsync) a millisecond or more.
const WRITER_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Buckets of the writer's job counts (a batch holds at most 512 jobs; the queue 8,192).
const JOB_COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 8192.0,
];

/// The queue's gauges, read from the store at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct QueueGauges {
    /// Deliveries by status.
    pub depth: [(&'static str, u64); 4],
    pub oldest_pending_secs: f64,
    /// Webhooks disabled by hookd.
    pub disabled: u64,
    /// Claims past their lease.
    pub expired_claims: u64,
    /// Delivery actors running.
    pub actors: u64,
    /// Messages by channel: (channel, queued, sent, failed).
    pub messages: [(&'static str, [u64; 3]); 2],
}

/// How an attempt ended, as `hookd_attempts_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed, and another attempt is scheduled.
    Retry,
    /// Failed for the last time: the delivery failed.
    Failed,
    /// The receiver answered 410 Gone: the webhook was disabled.
    Disabled,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    /// Whether the delivery ended with this attempt (`hookd_deliveries_total`).
    fn ends_delivery(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// The handles an attempt records into, each looked up once, the first time it is needed
/// (so a series appears when it first counts something, as with the macros): a lookup by
/// name and labels allocates and hashes, and every attempt records three.
#[derive(Default)]
struct AttemptMetrics {
    attempts: [OnceLock<Counter>; 4],
    deliveries: [OnceLock<Counter>; 4],
    duration: OnceLock<Histogram>,
}

/// Handle to this server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    recorder: Arc<PrometheusRecorder>,
    attempt: Arc<AttemptMetrics>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Prefix("hookd_writer_".into()), WRITER_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("hookd_writer_batch_jobs".into()),
                    JOB_COUNT_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("hookd_writer_waiting_jobs".into()),
                    JOB_COUNT_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let telemetry = Self {
            recorder: Arc::new(recorder),
            attempt: Arc::default(),
        };
        telemetry.with(|| {
            metrics::describe_counter!(
                "hookd_attempts_total",
                "Finished attempts by outcome (succeeded, retry, failed, disabled)."
            );
            metrics::describe_counter!(
                "hookd_deliveries_total",
                "Deliveries that reached a final outcome (succeeded, failed)."
            );
            metrics::describe_histogram!(
                "hookd_attempt_duration_seconds",
                Unit::Seconds,
                "Duration of HTTP attempts."
            );
            metrics::describe_gauge!("hookd_queue_depth", "Deliveries by status.");
            metrics::describe_gauge!(
                "hookd_oldest_pending_age_seconds",
                Unit::Seconds,
                "Age since creation of the oldest unfinished delivery (paused ones included)."
            );
            metrics::describe_gauge!(
                "hookd_disabled_webhooks",
                "Webhooks disabled (by failures or 410)."
            );
            metrics::describe_gauge!(
                "hookd_expired_claims",
                "Claims past their lease: attempts that will never report, released by the next sweep."
            );
            metrics::describe_gauge!("hookd_delivery_actors", "Delivery actors running.");
            metrics::describe_gauge!(
                "hookd_messages",
                "Emails and SMS by channel: queued (also waiting reminders), sent, failed."
            );
            metrics::describe_counter!(
                "hookd_actor_restarts_total",
                "Delivery actors restarted after a failure."
            );
            metrics::describe_histogram!(
                "hookd_writer_waiting_jobs",
                "Jobs waiting for the store's writer when a group commit began (its own included)."
            );
            metrics::describe_histogram!(
                "hookd_writer_batch_jobs",
                "Jobs committed together in one group commit."
            );
            metrics::describe_histogram!(
                "hookd_writer_work_seconds",
                Unit::Seconds,
                "Time a group commit spent running its jobs, before COMMIT."
            );
            metrics::describe_histogram!(
                "hookd_writer_commit_seconds",
                Unit::Seconds,
                "Time of COMMIT by durability: a durable one includes the WAL fsync, a relaxed one has none."
            );
        });
        telemetry
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    /// One attempt finished with `outcome`; a `succeeded` or `failed` one also finished its
    /// delivery.
    pub fn attempt_finished(&self, outcome: AttemptOutcome, duration: Duration) {
        let (metrics, name) = (&*self.attempt, outcome.as_str());
        let count = |cell: &OnceLock<Counter>, metric: &'static str| {
            cell.get_or_init(|| self.with(|| counter!(metric, "outcome" => name)))
                .increment(1);
        };
        count(&metrics.attempts[outcome as usize], "hookd_attempts_total");
        if outcome.ends_delivery() {
            count(
                &metrics.deliveries[outcome as usize],
                "hookd_deliveries_total",
            );
        }
        metrics
            .duration
            .get_or_init(|| self.with(|| histogram!("hookd_attempt_duration_seconds")))
            .record(duration.as_secs_f64());
    }

    /// The store's writer committed a batch of `jobs` (`waiting` were queued when it began).
    pub fn writer_batch(
        &self,
        waiting: usize,
        jobs: usize,
        durable: bool,
        work: Duration,
        commit: Duration,
    ) {
        let durability = if durable { "durable" } else { "relaxed" };
        self.with(|| {
            histogram!("hookd_writer_waiting_jobs").record(waiting as f64);
            histogram!("hookd_writer_batch_jobs").record(jobs as f64);
            histogram!("hookd_writer_work_seconds").record(work.as_secs_f64());
            histogram!("hookd_writer_commit_seconds", "durability" => durability)
                .record(commit.as_secs_f64());
        });
    }

    /// The supervisor restarted a failed delivery actor.
    pub fn actor_restarted(&self) {
        self.with(|| counter!("hookd_actor_restarts_total").increment(1));
    }

    /// Sets the gauges read from the store at scrape time.
    pub fn set_queue(&self, queue: &QueueGauges) {
        self.with(|| {
            for (status, count) in queue.depth {
                gauge!("hookd_queue_depth", "status" => status).set(count as f64);
            }
            gauge!("hookd_oldest_pending_age_seconds").set(queue.oldest_pending_secs);
            gauge!("hookd_disabled_webhooks").set(queue.disabled as f64);
            gauge!("hookd_expired_claims").set(queue.expired_claims as f64);
            gauge!("hookd_delivery_actors").set(queue.actors as f64);
            for (channel, [queued, sent, failed]) in queue.messages {
                for (status, n) in [("queued", queued), ("sent", sent), ("failed", failed)] {
                    gauge!("hookd_messages", "channel" => channel, "status" => status)
                        .set(n as f64);
                }
            }
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// Installs the process's log subscriber (human text or JSON). Logs never carry payloads,
/// answers or secrets: those types are not logged anywhere, and `Secret`'s Debug hides it.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
