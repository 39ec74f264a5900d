//! Isolation: 9 healthy webhooks beside 1 whose receiver hangs past the delivery timeout.
//!
//! Runs on fresh servers with the same load (open loop, one survey, every event fans out
//! to each webhook): the baseline has only the 9 healthy webhooks; the other adds the
//! hanging one. The healthy webhooks' end-to-end p99 (from when each POST was due) is
//! compared between the two. A single pair is not enough on a small shared box (the
//! baseline p99 alone moves by a quarter from run to run), so the two alternate for
//! [`ROUNDS`] rounds and the medians are compared.

use std::time::Duration;

use super::latency::{end_to_end, paced};
use super::{CpuMeter, launch, survey_with_webhooks};
use crate::Options;
use crate::load;
use crate::receiver::Receiver;
use crate::report::{Percentiles, Report};
use crate::server::{DeliveryOrder, Server};

/// Default events per run (30 s at the default rate).
pub const DEFAULT_SIZE: u64 = 6_000;
/// Default events per second (each goes to 9 healthy webhooks: 1,800 deliveries/s).
pub const DEFAULT_RATE: u64 = 200;
const HEALTHY: u32 = 9;
/// Baseline / hanging pairs, alternated so drift on the box affects both alike.
pub const ROUNDS: usize = 3;

/// What one run measured.
struct Run {
    healthy: Percentiles,
    hang_requests: u64,
    errors: usize,
    hookd_cpu_pct: f64,
}

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let n = options.size_or(DEFAULT_SIZE);
    let rate = options.rate.unwrap_or(DEFAULT_RATE).max(1);
    let (mut baseline, mut hanging) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        baseline.push(one_run(options, n, rate, false).await?);
        hanging.push(one_run(options, n, rate, true).await?);
    }

    let mut report = Report::new("isolation");
    report
        .add("events_per_s", rate)
        .add("events_per_run", n)
        .add("rounds", ROUNDS as u64)
        .add("healthy_webhooks", HEALTHY)
        .add("delivery_timeout_ms", options.timeout_ms)
        .add("hang_ms", hang_for(options).as_millis() as u64);
    for (name, runs) in [("baseline", &baseline), ("with_hanging", &hanging)] {
        report
            .add(
                &format!("{name}_p50_ms"),
                median(runs, |r| r.healthy.p50_ms),
            )
            .add(
                &format!("{name}_p90_ms"),
                median(runs, |r| r.healthy.p90_ms),
            )
            .add(
                &format!("{name}_p99_ms"),
                median(runs, |r| r.healthy.p99_ms),
            )
            .add(&format!("{name}_p99s_ms"), each(runs, |r| r.healthy.p99_ms))
            .add(
                &format!("{name}_hookd_cpu_pct"),
                median(runs, |r| r.hookd_cpu_pct),
            );
    }
    let ratio =
        median(&hanging, |r| r.healthy.p99_ms) / median(&baseline, |r| r.healthy.p99_ms).max(1e-9);
    let errors: usize = baseline.iter().chain(&hanging).map(|r| r.errors).sum();
    report
        .add("p99_ratio", ratio)
        .add(
            "hanging_requests_received",
            hanging.iter().map(|r| r.hang_requests).sum::<u64>(),
        )
        .add("errors", errors as u64);
    Ok(vec![report])
}

/// The median of a figure over runs (the upper middle one for an even count).
fn median(runs: &[Run], figure: impl Fn(&Run) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(figure).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// A figure of each run, in run order, rounded like the report's other figures.
fn each(runs: &[Run], figure: impl Fn(&Run) -> f64) -> serde_json::Value {
    runs.iter()
        .map(|r| (figure(r) * 100.0).round() / 100.0)
        .collect()
}

/// Longer than the timeout, so every attempt to the hanging receiver times out.
fn hang_for(options: &Options) -> Duration {
    Duration::from_millis(options.timeout_ms * 2)
}

async fn one_run(options: &Options, n: u64, rate: u64, with_hang: bool) -> anyhow::Result<Run> {
    let receiver = Receiver::start(hang_for(options)).await?;
    let dir = tempfile::tempdir()?;
    let own = [("HOOKD_DELIVERY_TIMEOUT_MS", options.timeout_ms.to_string())];
    let server = Server::start(&launch(options, dir.path(), &own)).await?;
    let mut urls: Vec<String> = (0..HEALTHY).map(|i| receiver.ok_url(i)).collect();
    if with_hang {
        urls.push(receiver.hang_url(HEALTHY));
    }
    let (survey, _) = survey_with_webhooks(&server.api, urls, DeliveryOrder::Concurrent).await?;

    let cpu = CpuMeter::start(&server);
    let sent = paced(&server.api, &survey, n, rate, options).await;
    let expected = (n - sent.errors() as u64) * u64::from(HEALTHY);
    let label = if with_hang {
        "healthy deliveries (hang)"
    } else {
        "healthy deliveries"
    };
    let bar = load::bar(options.progress, expected, label);
    receiver.wait_ok(expected, options.deadline, &bar).await?;
    bar.finish_and_clear();
    let cpu = cpu.stop();

    let warmup = rate.min(n / 10);
    let arrivals = receiver.arrivals();
    let healthy = end_to_end(&arrivals, &sent, warmup, |a| !a.hung);
    let run = Run {
        healthy,
        hang_requests: receiver.hang_count(),
        errors: sent.errors(),
        hookd_cpu_pct: cpu.hookd_pct,
    };
    server.kill()?;
    Ok(run)
}
