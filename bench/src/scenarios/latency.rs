//! Latency: from event creation to the receiver, at a fixed 1,000 events per second (open
//! loop: submissions leave on a schedule, whatever the server does).
//!
//! "Event creation" is the time each kiosk POST was *due* to be sent, on the bench's
//! clock, so the figure includes the durable ingest commit, the wake-up, the claim and the
//! HTTP delivery. A second figure starts at the event's own `timestamp` in the delivered
//! body (hookd's clock, millisecond resolution): the server-side part only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CpuMeter, launch, survey_with_webhooks};
use crate::Options;
use crate::load::{self, OpenLoop};
use crate::receiver::{Arrival, Receiver};
use crate::report::{Percentiles, Report};
use crate::server::{Api, DeliveryOrder, Server};

/// Default events (30 s at the default rate).
pub const DEFAULT_SIZE: u64 = 30_000;
/// Default events per second.
pub const DEFAULT_RATE: u64 = 1_000;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let n = options.size_or(DEFAULT_SIZE);
    let rate = options.rate.unwrap_or(DEFAULT_RATE).max(1);
    let receiver = Receiver::start(Duration::from_secs(1)).await?;
    let dir = tempfile::tempdir()?;
    let server = Server::start(&launch(options, dir.path(), &[])).await?;
    let (survey, _) =
        survey_with_webhooks(&server.api, [receiver.ok_url(0)], DeliveryOrder::Concurrent).await?;

    let cpu = CpuMeter::start(&server);
    let sent = paced(&server.api, &survey, n, rate, options).await;
    let acked = n - sent.errors() as u64;
    let bar = load::bar(options.progress, acked, "waiting for deliveries");
    receiver.wait_ok(acked, options.deadline, &bar).await?;
    bar.finish_and_clear();
    let cpu = cpu.stop();

    // The first second warms connections and caches; keep it out of the percentiles.
    let warmup = rate.min(n / 10);
    let arrivals = receiver.arrivals();
    let mut report = Report::new("latency");
    report
        .add("events_per_s", rate)
        .add("events", n)
        .add(
            "achieved_events_per_s",
            n as f64 / sent.elapsed.as_secs_f64().max(1e-9),
        )
        .add("errors", sent.errors() as u64)
        .add("warmup_events_excluded", warmup)
        .add(
            "measured_from",
            "the time each POST was due to leave the bench (open loop)",
        )
        .add_percentiles("e2e", &end_to_end(&arrivals, &sent, warmup, |_| true))
        .add_percentiles("from_event_timestamp", &from_timestamp(&arrivals, warmup))
        .add_percentiles("ack", &acks(&sent, warmup))
        .add("max_outstanding_requests", sent.max_outstanding);
    cpu.add_to(&mut report);
    crate::writer::add_to(&server.api, &mut report).await;
    server.kill()?;
    Ok(vec![report])
}

/// Submits `n` completed responses at `rate` per second (open loop), sequence numbers 0..n.
pub(super) async fn paced(
    api: &Api,
    survey: &str,
    n: u64,
    rate: u64,
    options: &Options,
) -> OpenLoop {
    let bar = load::bar(options.progress, n, &format!("sending at {rate}/s"));
    let (api, survey): (Api, Arc<str>) = (api.clone(), survey.into());
    load::open_loop(n, rate, &bar, move |i| {
        let (api, survey) = (api.clone(), survey.clone());
        async move { api.submit(&survey, i).await }
    })
    .await
}

/// Arrival time minus due time, for arrivals that `keep` and whose sequence number is past
/// the warm-up.
pub(super) fn end_to_end(
    arrivals: &[Arrival],
    sent: &OpenLoop,
    warmup: u64,
    keep: impl Fn(&Arrival) -> bool,
) -> Percentiles {
    let samples = arrivals
        .iter()
        .filter(|a| keep(a))
        .filter_map(|a| {
            let seq = a.seq.filter(|&s| s >= warmup)?;
            let due: Instant = *sent.due.get(seq as usize)?;
            Some(a.at.saturating_duration_since(due).as_micros() as u64)
        })
        .collect();
    Percentiles::of(samples)
}

fn from_timestamp(arrivals: &[Arrival], warmup: u64) -> Percentiles {
    let samples = arrivals
        .iter()
        .filter(|a| a.seq.is_some_and(|s| s >= warmup))
        .filter_map(|a| Some((a.wall_ms - a.event_ms?).max(0) as u64 * 1000))
        .collect();
    Percentiles::of(samples)
}

fn acks(sent: &OpenLoop, warmup: u64) -> Percentiles {
    Percentiles::of(
        sent.acks_us
            .iter()
            .skip(warmup as usize)
            .filter_map(|a| *a)
            .collect(),
    )
}
