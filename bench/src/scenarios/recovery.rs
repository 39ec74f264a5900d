//! Recovery: a backlog of pending deliveries, SIGKILL, restart on the same data directory.
//!
//! Loading the backlog: the first server runs with `HOOKD_HOST_RATE_LIMIT=1`, so its
//! active webhooks let about one request per second through to the receiver's host and the
//! rest of what the kiosk submissions queue stays pending (some claimed, as after a real
//! crash). Ten webhooks on one survey make ten deliveries per submission, the fastest
//! honest way to a large backlog through the public API. Then SIGKILL, and a restart
//! without the rate limit: time to first delivery and to the last one (both from the
//! restart's spawn), and the restarted process's peak RSS.

use std::time::Duration;

use anyhow::ensure;

use super::{CpuMeter, launch, ms_between, submit_many, survey_with_webhooks};
use crate::Options;
use crate::load::{self, RssSampler};
use crate::receiver::Receiver;
use crate::report::Report;
use crate::server::{DeliveryOrder, Server};

/// Default pending deliveries.
pub const DEFAULT_SIZE: u64 = 100_000;
const WEBHOOKS: u32 = 10;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let size = options.size_or(DEFAULT_SIZE);
    let events = size.div_ceil(u64::from(WEBHOOKS));
    let total = events * u64::from(WEBHOOKS);
    let receiver = Receiver::start(Duration::from_secs(1)).await?;
    let dir = tempfile::tempdir()?;

    let throttled = [("HOOKD_HOST_RATE_LIMIT", "1".to_owned())];
    let first = Server::start(&launch(options, dir.path(), &throttled)).await?;
    let urls = (0..WEBHOOKS).map(|i| receiver.ok_url(i));
    let (survey, _) = survey_with_webhooks(&first.api, urls, DeliveryOrder::Concurrent).await?;
    let what = format!("loading {total} deliveries");
    let load = submit_many(&first.api, &[survey], events, options, &what).await?;
    ensure!(
        load.errors == 0,
        "{} submissions failed while loading",
        load.errors
    );
    let before_kill = receiver.unique_ok() as u64;
    first.kill()?;

    let unlimited = [("HOOKD_HOST_RATE_LIMIT", "0".to_owned())];
    let second = Server::start(&launch(options, dir.path(), &unlimited)).await?;
    let cpu = CpuMeter::start(&second);
    let sampler = RssSampler::start(second.pid(), Duration::from_millis(100));
    let bar = load::bar(options.progress, total, "draining after restart");
    receiver
        .wait_unique(total as usize, options.deadline, &bar)
        .await?;
    bar.finish_and_clear();
    let cpu = cpu.stop();
    let max_rss_kb = sampler.finish().await;
    let memory = second.memory();

    let spawned = second.spawned_at;
    let after: Vec<_> = receiver
        .arrivals()
        .into_iter()
        .filter(|a| !a.hung && a.at >= spawned)
        .collect();
    let first_at = after.iter().map(|a| a.at).min().unwrap_or(spawned);
    let last_at = after.iter().map(|a| a.at).max().unwrap_or(spawned);
    let drain_s = last_at.saturating_duration_since(spawned).as_secs_f64();
    let backlog = total - before_kill;
    let db_bytes = std::fs::metadata(dir.path().join("data").join("hookd.db"))
        .map(|m| m.len())
        .unwrap_or(0);

    let mut report = Report::new("recovery");
    report
        .add("backlog_deliveries", backlog)
        .add("webhooks", WEBHOOKS)
        .add("load_acks_per_s", load.per_second())
        .add("restart_to_ready_ms", ms_between(spawned, second.ready_at))
        .add(
            "restart_to_first_delivery_ms",
            ms_between(spawned, first_at),
        )
        .add("restart_to_drained_s", drain_s)
        .add("drain_deliveries_per_s", backlog as f64 / drain_s.max(1e-9))
        .add(
            "duplicates",
            receiver.ok_count() - receiver.unique_ok() as u64,
        )
        .add("peak_rss_mb", memory.hwm_mb())
        .add("max_sampled_rss_mb", max_rss_kb as f64 / 1024.0)
        .add("database_mb", db_bytes as f64 / (1024.0 * 1024.0));
    cpu.add_to(&mut report);
    second.kill()?;
    Ok(vec![report])
}
