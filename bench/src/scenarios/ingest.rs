//! Ingest: completed responses acknowledged per second. Each acknowledgement means the
//! response, its event and one delivery per webhook are committed durably. Measured with
//! 1 and with 10 webhooks per survey, the receiver running (so deliveries compete with
//! ingest for the CPU, as they would in use).

use std::time::Duration;

use super::{CpuMeter, launch, submit_many, survey_with_webhooks};
use crate::Options;
use crate::receiver::Receiver;
use crate::report::{Percentiles, Report};
use crate::server::Server;

/// Default requests per variant.
pub const DEFAULT_SIZE: u64 = 20_000;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let n = options.size_or(DEFAULT_SIZE);
    let mut reports = Vec::new();
    for webhooks in [1, 10] {
        reports.push(variant(options, n, webhooks).await?);
    }
    Ok(reports)
}

async fn variant(options: &Options, n: u64, webhooks: u32) -> anyhow::Result<Report> {
    let receiver = Receiver::start(Duration::from_secs(1)).await?;
    let dir = tempfile::tempdir()?;
    let server = Server::start(&launch(options, dir.path(), &[])).await?;
    let urls = (0..webhooks).map(|i| receiver.ok_url(i));
    let (survey, _) = survey_with_webhooks(&server.api, urls, true).await?;

    let cpu = CpuMeter::start(&server);
    let what = format!("ingest, {webhooks} webhook(s)");
    let run = submit_many(&server.api, &[survey], n, options, &what).await?;
    let cpu = cpu.stop();

    let mut report = Report::new("ingest");
    report
        .add("webhooks_per_survey", webhooks)
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
