//! Latency as a clinic's HIS sees it (issue 14): 500 and then 1,000 completed responses
//! per second, open loop, for 60 s each on a fresh data directory, measured the way an
//! outside client measures.
//!
//! Method: each `POST /api/surveys/{id}/responses` carries `metadata.sentAtUs`, the wall
//! clock taken just before the request is handed to the HTTP client
//! ([`crate::server::Api::submit_stamped`]); the acknowledgement is the time its answer
//! came back minus that stamp, and event→receiver is the arrival at the receiver (wall
//! clock) minus the stamp found in the delivered body. The receiver runs on one thread of
//! its own ([`Receiver::start_on_one_thread`]), apart from the load generator's runtime.
//! The first second of each rate warms connections and is left out. hookd's CPU is
//! reported per message.

use std::sync::{Arc, Mutex};

use super::{CpuMeter, launch, survey_with_webhooks};
use crate::Options;
use crate::load;
use crate::receiver::Receiver;
use crate::report::{Percentiles, Report};
use crate::server::{DeliveryOrder, Server};

/// Default seconds at each rate.
pub const DEFAULT_SIZE: u64 = 60;
const RATES: [u64; 2] = [500, 1000];

/// Per request, in order: when it was stamped and when its acknowledgement came (Unix µs),
/// or `None` if it was refused.
type Stamps = Arc<Mutex<Vec<Option<(i64, i64)>>>>;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let seconds = options.size_or(DEFAULT_SIZE).max(2);
    let mut reports = Vec::new();
    for rate in RATES {
        reports.push(one_rate(options, rate, seconds).await?);
    }
    Ok(reports)
}

async fn one_rate(options: &Options, rate: u64, seconds: u64) -> anyhow::Result<Report> {
    let n = rate * seconds;
    let receiver = Receiver::start_on_one_thread()?;
    let dir = tempfile::tempdir()?;
    let server = Server::start(&launch(options, dir.path(), &[])).await?;
    let (survey, _) =
        survey_with_webhooks(&server.api, [receiver.ok_url(0)], DeliveryOrder::Concurrent).await?;

    let stamps: Stamps = Arc::new(Mutex::new(vec![None; n as usize]));
    let cpu = CpuMeter::start(&server);
    let started = std::time::Instant::now();
    let bar = load::bar(options.progress, n, &format!("sending at {rate}/s"));
    let (api, survey, kept) = (server.api.clone(), Arc::<str>::from(survey), stamps.clone());
    let sent = load::open_loop(n, rate, &bar, move |i| {
        let (api, survey, kept) = (api.clone(), survey.clone(), kept.clone());
        async move {
            let stamp = api.submit_stamped(&survey, i).await;
            kept.lock().expect("not poisoned")[i as usize] = stamp;
            stamp.is_some()
        }
    })
    .await;
    let acked = n - sent.errors() as u64;
    let bar = load::bar(options.progress, acked, "waiting for deliveries");
    receiver.wait_ok(acked, options.deadline, &bar).await?;
    bar.finish_and_clear();
    let used = cpu.stop();
    let wall = started.elapsed().as_secs_f64();

    let warmup = rate;
    let stamps = stamps.lock().expect("not poisoned").clone();
    let ack_us: Vec<u64> = stamps
        .iter()
        .skip(warmup as usize)
        .flatten()
        .map(|(sent, acked)| (acked - sent).max(0) as u64)
        .collect();
    let e2e_us: Vec<u64> = receiver
        .arrivals()
        .iter()
        .filter(|a| a.seq.is_some_and(|s| s >= warmup))
        .filter_map(|a| Some((a.wall_us - a.sent_at_us?).max(0) as u64))
        .collect();
    let mut report = Report::new("client-latency");
    report
        .add("events_per_s", rate)
        .add("seconds", seconds)
        .add("errors", sent.errors() as u64)
        .add("warmup_events_excluded", warmup)
        .add(
            "measured_from",
            "sentAtUs, stamped just before each request; one-thread receiver",
        )
        .add_percentiles("ack", &Percentiles::of(ack_us))
        .add_percentiles("e2e", &Percentiles::of(e2e_us))
        .add("max_outstanding_requests", sent.max_outstanding);
    used.add_to(&mut report);
    report.add(
        "hookd_cpu_ms_per_message",
        (used.hookd_pct / 100.0 * wall / n as f64 * 1000.0 * 1000.0).round() / 1000.0,
    );
    crate::writer::add_to(&server.api, &mut report).await;
    server.kill()?;
    Ok(report)
}
