//! The scenarios of issue 6. Each one starts its own `hookd` (fresh temp data directory)
//! and receiver, so no run inherits another's database or connections, and returns one
//! [`Report`](crate::Report) per variant.
//!
//! Sizes (`--size`): ingest = requests per variant; throughput = deliveries per variant;
//! fifo = deliveries; latency = events; isolation = events per run; recovery = pending deliveries;
//! scale = surveys (10 webhooks each); scrape = finished deliveries stored.

pub mod client_latency;
pub mod fifo;
pub mod ingest;
pub mod isolation;
pub mod latency;
pub mod messages;
pub mod recovery;
pub mod scale;
pub mod scrape;
pub mod throughput;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Options;
use crate::load::{self, ClosedLoop};
use crate::report::Report;
use crate::server::{Api, DeliveryOrder, Launch, Server, cpu_time};

/// The launch settings for a data directory: the options' extra settings, then the
/// scenario's own (which must win: they are what the scenario measures).
fn launch(options: &Options, data_dir: &Path, own: &[(&str, String)]) -> Launch {
    let mut env = options.server_env.clone();
    env.extend(own.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Launch {
        hookd: options.hookd.clone(),
        data_dir: data_dir.join("data"),
        env,
    }
}

/// CPU used by hookd and by the bench (load generator + receiver) over a phase, in percent
/// of one core (200% = both cores of a 2-core box).
struct CpuMeter {
    started: Instant,
    hookd_pid: u32,
    hookd: Duration,
    bench: Duration,
}

impl CpuMeter {
    fn start(server: &Server) -> Self {
        Self {
            started: Instant::now(),
            hookd_pid: server.pid(),
            hookd: server.cpu(),
            bench: cpu_time("/proc/self/stat"),
        }
    }

    /// The shares used since `start`.
    fn stop(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let hookd = cpu_time(&format!("/proc/{}/stat", self.hookd_pid)).saturating_sub(self.hookd);
        let bench = cpu_time("/proc/self/stat").saturating_sub(self.bench);
        CpuUse {
            hookd_pct: 100.0 * hookd.as_secs_f64() / wall,
            bench_pct: 100.0 * bench.as_secs_f64() / wall,
        }
    }
}

/// CPU shares over a phase, in percent of one core.
struct CpuUse {
    hookd_pct: f64,
    bench_pct: f64,
}

impl CpuUse {
    fn add_to(&self, report: &mut Report) {
        report
            .add("hookd_cpu_pct", self.hookd_pct)
            .add("bench_cpu_pct", self.bench_pct);
    }
}

/// Submits `n` completed responses (sequence numbers 0..n) from the options' concurrency,
/// request i to `surveys[i % len]`; fails if none was acknowledged.
async fn submit_many(
    api: &Api,
    surveys: &[String],
    n: u64,
    options: &Options,
    what: &str,
) -> anyhow::Result<ClosedLoop> {
    let bar = load::bar(options.progress, n, what);
    let (api, surveys): (Api, Arc<[String]>) = (api.clone(), surveys.into());
    let run = load::closed_loop(n, options.concurrency, options.deadline, &bar, move |i| {
        let (api, surveys) = (api.clone(), surveys.clone());
        async move {
            let survey = &surveys[(i % surveys.len() as u64) as usize];
            api.submit(survey, i).await
        }
    })
    .await;
    if run.ok == 0 {
        anyhow::bail!(
            "{what}: no submission was acknowledged ({} errors)",
            run.errors
        );
    }
    Ok(run)
}

/// A survey with one active webhook per URL, each with the given ordering.
async fn survey_with_webhooks(
    api: &Api,
    urls: impl IntoIterator<Item = String>,
    order: DeliveryOrder,
) -> anyhow::Result<(String, Vec<String>)> {
    let survey = api.create_survey("Bench survey").await?;
    let mut ids = Vec::new();
    for url in urls {
        ids.push(
            api.create_ordered_webhook(&survey, &url, true, order)
                .await?,
        );
    }
    Ok((survey, ids))
}

/// The elapsed time from `from` to `to` in milliseconds (0 if `to` is earlier).
fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}
