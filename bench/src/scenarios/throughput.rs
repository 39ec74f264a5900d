//! Throughput: deliveries per second end to end, to a receiver that answers at once.
//!
//! Method: the receiver is down (its `/gate/...` path holds every request) while the events
//! are ingested, so the deliveries pile up pending in hookd (each webhook has only
//! `HOOKD_MAX_IN_FLIGHT` requests held open, the rest wait in the store). The clock starts
//! when the bench opens the gate and stops at the last arrival: pure delivery — claim,
//! POST, record — of a backlog, ingest being measured separately. Variants: 1 webhook, and
//! 10 webhooks on one survey. The delivery timeout is raised to its maximum so the held
//! requests do not time out while the backlog is loaded.

use std::time::{Duration, Instant};

use anyhow::ensure;

use super::{CpuMeter, launch, ms_between, submit_many, survey_with_webhooks};
use crate::Options;
use crate::load;
use crate::receiver::{Arrival, Receiver};
use crate::report::Report;
use crate::server::{DeliveryOrder, Server};

/// Default deliveries per variant.
pub const DEFAULT_SIZE: u64 = 100_000;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let size = options.size_or(DEFAULT_SIZE);
    let mut reports = Vec::new();
    for webhooks in [1, 10] {
        let backlog = Backlog {
            scenario: "throughput",
            webhooks,
            order: DeliveryOrder::Concurrent,
        };
        reports.push(deliver_backlog(options, size, &backlog).await?);
    }
    Ok(reports)
}

/// What a backlog run delivers to: its webhooks (all on one survey) and their ordering, and
/// the scenario its report is named after (`fifo` runs the same method).
pub(super) struct Backlog {
    pub scenario: &'static str,
    pub webhooks: u32,
    pub order: DeliveryOrder,
}

/// Pre-loads about `size` deliveries while the receiver is down, opens it and times the
/// drain from its return to the last arrival.
pub(super) async fn deliver_backlog(
    options: &Options,
    size: u64,
    backlog: &Backlog,
) -> anyhow::Result<Report> {
    let webhooks = backlog.webhooks;
    let events = size.div_ceil(u64::from(webhooks));
    let total = events * u64::from(webhooks);
    let receiver = Receiver::start(Duration::from_secs(1)).await?;
    let dir = tempfile::tempdir()?;
    let own = [("HOOKD_DELIVERY_TIMEOUT_MS", "300000".to_owned())];
    let server = Server::start(&launch(options, dir.path(), &own)).await?;
    let api = &server.api;
    let urls = (0..webhooks).map(|i| receiver.gate_url(i));
    let (survey, _) = survey_with_webhooks(api, urls, backlog.order).await?;

    let what = format!("pre-loading {events} events");
    let preload = submit_many(api, std::slice::from_ref(&survey), events, options, &what).await?;
    ensure!(
        preload.errors == 0,
        "{} submissions failed while pre-loading",
        preload.errors
    );
    ensure!(
        receiver.ok_count() == 0,
        "the gate let deliveries through while closed"
    );

    let cpu = CpuMeter::start(&server);
    let started = Instant::now();
    receiver.open_gate();
    let bar = load::bar(
        options.progress,
        total,
        &format!("delivering, {webhooks} webhook(s)"),
    );
    receiver.wait_ok(total, options.deadline, &bar).await?;
    bar.finish_and_clear();
    let cpu = cpu.stop();
    let arrivals = receiver.arrivals();
    let first = arrivals.iter().map(|a| a.at).min().unwrap_or(started);
    let last = arrivals.iter().map(|a| a.at).max().unwrap_or(started);
    let seconds = last
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-9);

    let mut report = Report::new(backlog.scenario);
    report
        .add("webhooks", webhooks)
        .add("deliveries", total)
        .add(
            "method",
            "backlog held by a receiver that is down; timed from its return to the last arrival",
        )
        .add("first_delivery_ms", ms_between(started, first))
        .add("seconds", seconds)
        .add("deliveries_per_s", total as f64 / seconds)
        .add(
            "duplicates",
            receiver.ok_count() - receiver.unique_ok() as u64,
        )
        .add("preload_acks_per_s", preload.per_second());
    if backlog.order == DeliveryOrder::Fifo {
        report.add("out_of_order", out_of_order(&arrivals));
    }
    cpu.add_to(&mut report);
    server.kill()?;
    Ok(report)
}

/// Arrivals whose event was stored before one that arrived earlier (by the body's
/// `timestamp`, at hookd's 1 ms resolution): 0 when a FIFO webhook kept its order.
fn out_of_order(arrivals: &[Arrival]) -> u64 {
    let mut latest = i64::MIN;
    let mut late = 0;
    for event_ms in arrivals
        .iter()
        .filter(|a| !a.hung)
        .filter_map(|a| a.event_ms)
    {
        if event_ms < latest {
            late += 1;
        }
        latest = latest.max(event_ms);
    }
    late
}
