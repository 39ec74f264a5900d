//! Scale: 10 webhooks on each of many surveys (10,000 on 1,000 by default). Resident memory
//! of the empty server, with every webhook registered and idle, and while one event per
//! survey is delivered to all of its webhooks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;

use super::{CpuMeter, launch, submit_many};
use crate::Options;
use crate::load::{self, RssSampler};
use crate::receiver::Receiver;
use crate::report::Report;
use crate::server::Server;

/// Default surveys.
pub const DEFAULT_SIZE: u64 = 1_000;
const PER_SURVEY: u64 = 10;
/// How long the server is left alone before "idle" memory is read.
const SETTLE: Duration = Duration::from_secs(2);

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let surveys = options.size_or(DEFAULT_SIZE);
    let webhooks = surveys * PER_SURVEY;
    let receiver = Arc::new(Receiver::start(Duration::from_secs(1)).await?);
    let dir = tempfile::tempdir()?;
    let server = Server::start(&launch(options, dir.path(), &[])).await?;
    let empty = server.memory();
    let api = server.api.clone();

    // Surveys, then their webhooks, through the API with the usual client concurrency.
    let ids = Arc::new(Mutex::new(vec![String::new(); surveys as usize]));
    let bar = load::bar(options.progress, surveys, "creating surveys");
    let made = load::closed_loop(surveys, options.concurrency, options.deadline, &bar, {
        let (api, ids) = (api.clone(), ids.clone());
        move |i| {
            let (api, ids) = (api.clone(), ids.clone());
            async move {
                let Ok(id) = api.create_survey(&format!("Survey {i}")).await else {
                    return false;
                };
                ids.lock().expect("not poisoned")[i as usize] = id;
                true
            }
        }
    })
    .await;
    ensure!(
        made.errors == 0,
        "{} surveys could not be created",
        made.errors
    );
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().expect("not poisoned").clone());

    let bar = load::bar(options.progress, webhooks, "creating webhooks");
    let created = load::closed_loop(webhooks, options.concurrency, options.deadline, &bar, {
        let (api, ids, receiver) = (api.clone(), ids.clone(), receiver.clone());
        move |i| {
            let (api, ids) = (api.clone(), ids.clone());
            let url = receiver.ok_url(i as u32);
            async move {
                let survey = &ids[(i / PER_SURVEY) as usize];
                api.create_webhook(survey, &url, true).await.is_ok()
            }
        }
    })
    .await;
    ensure!(
        created.errors == 0,
        "{} webhooks could not be created",
        created.errors
    );
    tokio::time::sleep(SETTLE).await;
    let idle = server.memory();

    let cpu = CpuMeter::start(&server);
    let sampler = RssSampler::start(server.pid(), Duration::from_millis(50));
    let started = Instant::now();
    let sent = submit_many(&api, &ids, surveys, options, "one event per survey").await?;
    let bar = load::bar(options.progress, webhooks, "delivering to every webhook");
    receiver
        .wait_ok(sent.ok * PER_SURVEY, options.deadline, &bar)
        .await?;
    bar.finish_and_clear();
    let cpu = cpu.stop();
    let last = receiver.arrivals().iter().map(|a| a.at).max();
    let elapsed = last.map_or(0.0, |last| {
        last.saturating_duration_since(started).as_secs_f64()
    });
    let max_rss_kb = sampler.finish().await;
    let after = server.memory();

    let mut report = Report::new("scale");
    report
        .add("surveys", surveys)
        .add("webhooks", webhooks)
        .add("webhook_creates_per_s", created.per_second())
        .add("rss_mb_empty", empty.rss_mb())
        .add("rss_mb_idle", idle.rss_mb())
        .add("rss_mb_max_delivering", max_rss_kb as f64 / 1024.0)
        .add("rss_mb_after", after.rss_mb())
        .add("peak_rss_mb", after.hwm_mb())
        .add("deliveries", receiver.ok_count())
        .add("seconds_to_last_delivery", elapsed);
    cpu.add_to(&mut report);
    server.kill()?;
    Ok(vec![report])
}
