//! # hookd-bench
//!
//! Measures hookd the way its users feel it: the real `hookd serve` binary on a temp data
//! directory and a free loopback port, this process's own fast receiver on loopback, and
//! load driven only through the public API. Each scenario prints a table and one JSON line
//! (`{"scenario": ..., ...figures}`), so runs can be compared by eye and by script.
//!
//! ## The rooms
//!
//! - [`server`] — starts, SIGKILLs and restarts the `hookd` process; a small API client;
//!   memory and CPU figures from `/proc`.
//! - [`receiver`] — the webhook receiver: answers at once (`/ok/{tag}`), hangs past the
//!   delivery timeout (`/hang/{tag}`) or is "down" until the bench opens a gate
//!   (`/gate/{tag}`), and records every arrival with its time.
//! - [`load`] — closed-loop (N requests, C concurrent clients) and open-loop (fixed rate)
//!   drivers, with progress bars.
//! - [`report`] — percentiles and the output: table and JSON lines.
//! - [`writer`] — what hookd's store writer did during a run, from its `/metrics`.
//! - [`scenarios`] — ingest, throughput, fifo, latency, isolation, recovery, scale.
//!
//! Every loop is bounded in count and in time ([`Options::deadline`]) and stops by itself;
//! every `hookd` process is killed when its [`server::Server`] is dropped.

pub mod load;
pub mod receiver;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod smtp_sink;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;

pub use report::Report;

/// The scenarios of issue 6, plus `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Completed responses acknowledged (durably) per second, 1 and 10 webhooks per survey,
    /// with the receiver up (deliveries sent meanwhile) and down (deliveries wait).
    Ingest,
    /// Deliveries per second end to end, to a receiver that answers at once.
    Throughput,
    /// The same to one webhook with `"ordering": "fifo"` (one attempt at a time).
    Fifo,
    /// Event-to-receiver latency percentiles at a fixed event rate (open loop).
    Latency,
    /// Healthy webhooks' latency beside one whose receiver hangs past the timeout.
    Isolation,
    /// A backlog of pending deliveries, SIGKILL, restart: first delivery, drain, peak RSS.
    Recovery,
    /// 10 webhooks on each of many surveys: RSS idle and while delivering.
    Scale,
    /// `/metrics` latency with 1,000,000 finished deliveries stored.
    Scrape,
    /// Emails per second to a mail server that accepts at once, and a distribution to
    /// 1,000 contacts.
    Messages,
    /// 500/s and 1,000/s for 60 s each, timed as a client does: stamped before each
    /// request, a one-thread receiver.
    ClientLatency,
    /// Every scenario above, in that order.
    All,
}

impl Scenario {
    pub const EACH: [Scenario; 10] = [
        Self::Ingest,
        Self::Throughput,
        Self::Fifo,
        Self::Latency,
        Self::Isolation,
        Self::Recovery,
        Self::Scale,
        Self::Scrape,
        Self::Messages,
        Self::ClientLatency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Throughput => "throughput",
            Self::Fifo => "fifo",
            Self::Latency => "latency",
            Self::Isolation => "isolation",
            Self::Recovery => "recovery",
            Self::Scale => "scale",
            Self::Scrape => "scrape",
            Self::Messages => "messages",
            Self::ClientLatency => "client-latency",
            Self::All => "all",
        }
    }
}

/// How to run a scenario. `None` fields take the scenario's own default, so one set of
/// options serves `all`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `hookd` binary to run.
    pub hookd: PathBuf,
    /// The scenario's size (its meaning is given in each scenario's docs and `--help`).
    pub size: Option<u64>,
    /// Concurrent API clients of the closed-loop phases.
    pub concurrency: usize,
    /// Events per second of the open-loop scenarios (latency: 1,000; isolation: 200).
    pub rate: Option<u64>,
    /// `HOOKD_DELIVERY_TIMEOUT_MS` of the isolation runs; the hanging receiver holds each
    /// request longer than this.
    pub timeout_ms: u64,
    /// Extra `KEY=VALUE` settings for every `hookd` started (e.g. `HOOKD_MAX_IN_FLIGHT`).
    pub server_env: Vec<(String, String)>,
    /// Longest any one phase may wait (ingest, drain, ...) before the scenario gives up.
    pub deadline: Duration,
    /// Draw progress bars (the smoke test turns them off).
    pub progress: bool,
}

impl Options {
    /// Defaults for `hookd` at `hookd`.
    pub fn new(hookd: PathBuf) -> Self {
        Self {
            hookd,
            size: None,
            concurrency: 64,
            rate: None,
            timeout_ms: 2000,
            server_env: Vec::new(),
            deadline: Duration::from_secs(600),
            progress: true,
        }
    }

    fn size_or(&self, default: u64) -> u64 {
        self.size.unwrap_or(default).max(1)
    }
}

impl Scenario {
    /// The scenarios this one stands for (`all` expands to each).
    pub fn expand(self) -> Vec<Scenario> {
        if self == Self::All {
            Self::EACH.to_vec()
        } else {
            vec![self]
        }
    }
}

/// Runs one scenario (or each of `all`) and returns its reports; printing is the caller's.
pub async fn run(scenario: Scenario, options: &Options) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    for each in scenario.expand() {
        reports.extend(run_one(each, options).await?);
    }
    Ok(reports)
}

/// Runs a single scenario (not `all`).
pub async fn run_one(scenario: Scenario, options: &Options) -> anyhow::Result<Vec<Report>> {
    let result = match scenario {
        Scenario::Ingest => scenarios::ingest::run(options).await,
        Scenario::Throughput => scenarios::throughput::run(options).await,
        Scenario::Fifo => scenarios::fifo::run(options).await,
        Scenario::Latency => scenarios::latency::run(options).await,
        Scenario::Isolation => scenarios::isolation::run(options).await,
        Scenario::Recovery => scenarios::recovery::run(options).await,
        Scenario::Scale => scenarios::scale::run(options).await,
        Scenario::Scrape => scenarios::scrape::run(options).await,
        Scenario::Messages => scenarios::messages::run(options).await,
        Scenario::ClientLatency => scenarios::client_latency::run(options).await,
        Scenario::All => return Box::pin(run(scenario, options)).await,
    };
    let mut reports = result.with_context(|| format!("scenario {}", scenario.name()))?;
    // Anything else running on the box skews every figure; say how busy it was.
    let load = load_average();
    for report in &mut reports {
        report.add("load_avg_1m", load);
    }
    Ok(reports)
}

/// The 1-minute load average (0 where `/proc/loadavg` is not readable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The release `hookd` beside this executable (`target/release/hookd` when run through
/// `cargo run --release -p hookd-bench`). The harness never builds it: a stale or missing
/// binary is the user's call, not a surprise compile in the middle of a measurement.
pub fn default_hookd() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let hookd = exe.with_file_name(format!("hookd{}", std::env::consts::EXE_SUFFIX));
    check_hookd(&hookd)?;
    Ok(hookd)
}

/// Fails with the command that fixes it when `path` is not there.
pub fn check_hookd(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "no hookd binary at {}: run `cargo build --release` first (or pass --hookd PATH)",
            path.display()
        );
    }
    Ok(())
}
