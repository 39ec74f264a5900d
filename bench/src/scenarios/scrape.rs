//! Scrape: how long `/metrics` takes with a long history stored (issue 12: under 10 ms
//! with 1,000,000 finished deliveries).
//!
//! Method: 10 webhooks on one survey, to a receiver that answers at once; `size / 10`
//! completed responses are submitted, so `size` deliveries are made, and the bench waits
//! until every one has arrived (all `succeeded`). Then it scrapes `/metrics` one request
//! at a time, 200 times, and reports the latency of each scrape, measured at the client
//! on loopback, and that the scrape counted every delivery.

use std::time::{Duration, Instant};

use anyhow::ensure;

use super::{launch, submit_many, survey_with_webhooks};
use crate::Options;
use crate::load;
use crate::receiver::Receiver;
use crate::report::{Percentiles, Report};
use crate::server::{DeliveryOrder, Server};

/// Default finished deliveries stored before scraping.
pub const DEFAULT_SIZE: u64 = 1_000_000;

const WEBHOOKS: u32 = 10;
const SCRAPES: usize = 200;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let events = options.size_or(DEFAULT_SIZE).div_ceil(u64::from(WEBHOOKS));
    let total = events * u64::from(WEBHOOKS);
    let receiver = Receiver::start(Duration::from_secs(1)).await?;
    let dir = tempfile::tempdir()?;
    // Scraped back to back from one address: the limit on requests without a key would
    // answer most of them 429 (a real scraper comes every 15 s or so).
    let own = [("HOOKD_PUBLIC_RATE_LIMIT", "0".to_owned())];
    let server = Server::start(&launch(options, dir.path(), &own)).await?;
    let api = &server.api;
    let urls = (0..WEBHOOKS).map(|i| receiver.ok_url(i));
    let (survey, _) = survey_with_webhooks(api, urls, DeliveryOrder::Concurrent).await?;
    let what = format!("storing {total} deliveries");
    let run = submit_many(api, std::slice::from_ref(&survey), events, options, &what).await?;
    ensure!(run.errors == 0, "{} submissions failed", run.errors);
    let bar = load::bar(options.progress, total, "delivering");
    receiver.wait_ok(total, options.deadline, &bar).await?;
    bar.finish_and_clear();

    // The outcomes are recorded a moment after the receiver saw them.
    let wanted = format!("hookd_queue_depth{{status=\"succeeded\"}} {total}");
    let settled = Instant::now();
    while !api.metrics().await?.lines().any(|line| line == wanted) {
        ensure!(
            settled.elapsed() < options.deadline,
            "/metrics never counted {total} succeeded deliveries"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut samples_us = Vec::with_capacity(SCRAPES);
    let mut bytes = 0;
    for _ in 0..SCRAPES {
        let started = Instant::now();
        let text = api.metrics().await?;
        samples_us.push(started.elapsed().as_micros() as u64);
        bytes = text.len();
    }
    let mut report = Report::new("scrape");
    report
        .add("finished_deliveries", total)
        .add("scrapes", SCRAPES as u64)
        .add("bytes", bytes as u64)
        .add_percentiles("scrape", &Percentiles::of(samples_us));
    server.kill()?;
    Ok(vec![report])
}
