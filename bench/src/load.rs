//! Load drivers. Closed loop: C clients each send their next request as soon as the last
//! one is answered, N requests in all (a throughput figure). Open loop: requests leave on a
//! fixed schedule whatever the server does, and each is timed from when it was *due*, so
//! a stalled server shows up in the latency instead of slowing the load down (no
//! coordinated omission).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// A progress bar for `len` steps, or a hidden one when `shown` is false.
pub fn bar(shown: bool, len: u64, what: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// What a closed-loop run saw.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Requests answered as expected.
    pub ok: u64,
    pub errors: u64,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Each request's round trip, in microseconds.
    pub latencies_us: Vec<u64>,
    /// The run stopped at the deadline before sending all N.
    pub timed_out: bool,
}

impl ClosedLoop {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends `n` requests (`request(i)` for i in 0..n) from `concurrency` clients; stops early
/// at `deadline`. `request` answers whether the server acknowledged it.
pub async fn closed_loop<F, Fut>(
    n: u64,
    concurrency: usize,
    deadline: Duration,
    bar: &ProgressBar,
    request: F,
) -> ClosedLoop
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let give_up = started + deadline;
    let mut clients = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, request, bar) = (next.clone(), request.clone(), bar.clone());
        clients.spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
            let mut timed_out = false;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if Instant::now() > give_up {
                    timed_out = true;
                    break;
                }
                let sent = Instant::now();
                if request(i).await {
                    ok += 1;
                } else {
                    errors += 1;
                }
                latencies.push(sent.elapsed().as_micros() as u64);
                bar.inc(1);
            }
            (ok, errors, latencies, timed_out)
        });
    }
    let mut total = ClosedLoop {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::with_capacity(n as usize),
        timed_out: false,
    };
    while let Some(joined) = clients.join_next().await {
        let (ok, errors, latencies, timed_out) = joined.expect("a client task does not panic");
        total.ok += ok;
        total.errors += errors;
        total.latencies_us.extend(latencies);
        total.timed_out |= timed_out;
    }
    total.elapsed = started.elapsed();
    bar.finish_and_clear();
    total
}

/// What an open-loop run saw.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// When request i was due to leave (index = sequence number).
    pub due: Vec<Instant>,
    /// Its acknowledgement time measured from when it was due, in microseconds, or `None`
    /// if it failed.
    pub acks_us: Vec<Option<u64>>,
    /// Highest number of requests outstanding at once.
    pub max_outstanding: u64,
    pub elapsed: Duration,
}

impl OpenLoop {
    pub fn errors(&self) -> usize {
        self.acks_us.iter().filter(|a| a.is_none()).count()
    }
}

/// Most requests allowed in flight at once: a stalled server must not make the bench
/// open connections without bound. Reaching it delays sends, which the latency (timed
/// from when each request was due) still shows.
const MAX_OUTSTANDING: u64 = 4096;

/// Sends `n` requests at `rate` per second on a fixed schedule (a tokio interval that
/// catches up after a late tick instead of shifting the schedule).
pub async fn open_loop<F, Fut>(n: u64, rate: u64, bar: &ProgressBar, request: F) -> OpenLoop
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started.into(), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let outstanding = Arc::new(AtomicU64::new(0));
    let mut max_outstanding = 0;
    let mut due = Vec::with_capacity(n as usize);
    let mut tasks = JoinSet::new();
    for i in 0..n {
        ticks.tick().await;
        let due_at = started + period.mul_f64(i as f64);
        due.push(due_at);
        while outstanding.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        max_outstanding = max_outstanding.max(outstanding.fetch_add(1, Ordering::Relaxed) + 1);
        let (request, outstanding, bar) = (request.clone(), outstanding.clone(), bar.clone());
        tasks.spawn(async move {
            let ok = request(i).await;
            outstanding.fetch_sub(1, Ordering::Relaxed);
            bar.inc(1);
            (i, ok.then(|| due_at.elapsed().as_micros() as u64))
        });
    }
    let mut acks_us = vec![None; n as usize];
    while let Some(joined) = tasks.join_next().await {
        let (i, ack) = joined.expect("a request task does not panic");
        acks_us[i as usize] = ack;
    }
    bar.finish_and_clear();
    OpenLoop {
        due,
        acks_us,
        max_outstanding,
        elapsed: started.elapsed(),
    }
}

/// Samples a process's resident memory every `every` until the returned handle is stopped;
/// answers the highest `VmRSS` seen, in kB.
pub struct RssSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut max = 0;
            loop {
                max = max.max(crate::server::Memory::of(pid).rss_kb);
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return max,
                }
            }
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}
