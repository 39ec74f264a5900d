//! Ingest: completed responses acknowledged per second. Each acknowledgement means the
//! response, its event and one delivery per webhook are committed durably. Measured with
//! 1 and with 10 webhooks per survey, each in two conditions:
//! - receiver up: it answers at once, so the deliveries are sent while the burst is being
//!   acknowledged and compete with it for the two cores and the store's writer;
//! - receiver down (its `/gate/...` path holds requests): the HIS is away, say for
//!   maintenance, and the deliveries wait in the store; this is the ingest path alone.

use std::time::Duration;

use super::{CpuMeter, launch, submit_many, survey_with_webhooks};
use crate::Options;
use crate::receiver::Receiver;
use crate::report::{Percentiles, Report};
use crate::server::{DeliveryOrder, Server};

/// Default requests per variant.
pub const DEFAULT_SIZE: u64 = 20_000;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let n = options.size_or(DEFAULT_SIZE);
    let mut reports = Vec::new();
    for webhooks in [1, 10] {
        for receiver_up in [true, false] {
            reports.push(variant(options, n, webhooks, receiver_up).await?);
        }
    }
    Ok(reports)
}

async fn variant(
    options: &Options,
    n: u64,
    webhooks: u32,
    receiver_up: bool,
) -> anyhow::Result<Report> {
    let receiver = Receiver::start(Duration::from_secs(1)).await?;
    let dir = tempfile::tempdir()?;
    // With the receiver down, held requests must not time out (and be retried) while the
    // burst is loaded; with it up, every setting keeps its default.
    let own: &[(&str, String)] = if receiver_up {
        &[]
    } else {
        &[("HOOKD_DELIVERY_TIMEOUT_MS", "300000".to_owned())]
    };
    let server = Server::start(&launch(options, dir.path(), own)).await?;
    let urls = (0..webhooks).map(|i| {
        if receiver_up {
            receiver.ok_url(i)
        } else {
            receiver.gate_url(i)
        }
    });
    let (survey, _) = survey_with_webhooks(&server.api, urls, DeliveryOrder::Concurrent).await?;

    let cpu = CpuMeter::start(&server);
    let state = if receiver_up { "up" } else { "down" };
    let what = format!("ingest, {webhooks} webhook(s), receiver {state}");
    let run = submit_many(&server.api, &[survey], n, options, &what).await?;
    let cpu = cpu.stop();

    let mut report = Report::new("ingest");
    report
        .add("webhooks_per_survey", webhooks)
        .add("receiver", state)
        .add("requests", n)
        .add("concurrency", options.concurrency as u64)
        .add("acknowledged", run.ok)
        .add("errors", run.errors)
        .add("seconds", run.elapsed.as_secs_f64())
        .add("acks_per_s", run.per_second())
        .add_percentiles("ack", &Percentiles::of(run.latencies_us))
        .add("deliveries_received_meanwhile", receiver.ok_count());
    cpu.add_to(&mut report);
    if run.timed_out {
        report.add("stopped_at_deadline", true);
    }
    server.kill()?;
    Ok(report)
}
