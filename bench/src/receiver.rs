//! The webhook receiver: an axum server on loopback in this process that records every
//! arrival (time, delivery id, the bench sequence number and the event timestamp from the
//! body) and answers at once (`/ok/{tag}`), only after holding the request for a while
//! (`/hang/{tag}`, longer than hookd's delivery timeout), or only once the bench opens its
//! gate (`/gate/{tag}`: a receiver that is down until a chosen moment).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use indicatif::ProgressBar;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The `{tag}` of the path: which webhook it was sent to.
    pub tag: u32,
    /// It came to `/hang/...`.
    pub hung: bool,
    pub at: Instant,
    /// Wall-clock arrival, in Unix milliseconds (to compare with the body's `timestamp`).
    pub wall_ms: i64,
    /// `X-Webhook-Delivery`.
    pub delivery: String,
    /// `data.metadata.seq` of the body: the bench's number for the submission.
    pub seq: Option<u64>,
    /// The body's `timestamp` (event creation in hookd), in Unix milliseconds.
    pub event_ms: Option<i64>,
    /// Wall-clock arrival, in Unix microseconds.
    pub wall_us: i64,
    /// `data.metadata.sentAtUs`: when the bench wrote the request that made the event
    /// ([`crate::server::Api::submit_stamped`]), in Unix microseconds.
    pub sent_at_us: Option<i64>,
}

struct Shared {
    arrivals: Mutex<Vec<Arrival>>,
    /// Arrivals on `/ok/...`; read often by waiters, so kept outside the lock.
    ok_count: AtomicU64,
    hang_count: AtomicU64,
    hang_for: Duration,
    /// `true` once `/gate/...` lets requests through.
    gate: watch::Receiver<bool>,
}

/// The running receiver. Dropping it stops accepting connections.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    open_gate: watch::Sender<bool>,
    /// The server task, when it runs on the bench's runtime (not on a thread of its own).
    task: Option<JoinHandle<()>>,
}

#[derive(Deserialize)]
struct Body {
    timestamp: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    seq: Option<u64>,
    sent_at_us: Option<i64>,
}

impl Receiver {
    /// Starts on a free loopback port. `hang_for` is how long `/hang/...` holds a request.
    pub async fn start(hang_for: Duration) -> anyhow::Result<Self> {
        let (open_gate, shared, app) = Self::parts(hang_for);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            open_gate,
            task: Some(task),
        })
    }

    /// The same receiver on one thread of its own (a current-thread runtime), as a HIS's
    /// small endpoint would be: it shares no scheduler with the load generator, and one
    /// request is handled at a time. It lives until the bench exits.
    pub fn start_on_one_thread() -> anyhow::Result<Self> {
        let (open_gate, shared, app) = Self::parts(Duration::from_secs(1));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime starts");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("a bound listener converts");
                    let _ = axum::serve(listener, app).await;
                });
            })?;
        Ok(Self {
            addr,
            shared,
            open_gate,
            task: None,
        })
    }

    fn parts(hang_for: Duration) -> (watch::Sender<bool>, Arc<Shared>, Router) {
        let (open_gate, gate) = watch::channel(false);
        let shared = Arc::new(Shared {
            arrivals: Mutex::new(Vec::with_capacity(1 << 16)),
            ok_count: AtomicU64::new(0),
            hang_count: AtomicU64::new(0),
            hang_for,
            gate,
        });
        let app = Router::new()
            .route("/ok/{tag}", post(ok))
            .route("/hang/{tag}", post(hang))
            .route("/gate/{tag}", post(gated))
            .with_state(shared.clone());
        (open_gate, shared, app)
    }

    /// The URL of the path that answers at once.
    pub fn ok_url(&self, tag: u32) -> String {
        format!("http://{}/ok/{tag}", self.addr)
    }

    /// The URL of the path that hangs.
    pub fn hang_url(&self, tag: u32) -> String {
        format!("http://{}/hang/{tag}", self.addr)
    }

    /// The URL of the path that holds requests until [`Receiver::open_gate`]; they count
    /// as `/ok/...` arrivals from the moment they are let through.
    pub fn gate_url(&self, tag: u32) -> String {
        format!("http://{}/gate/{tag}", self.addr)
    }

    /// Lets every held and future `/gate/...` request through.
    pub fn open_gate(&self) {
        let _ = self.open_gate.send(true);
    }

    /// Requests received on `/ok/...` so far (duplicates included).
    pub fn ok_count(&self) -> u64 {
        self.shared.ok_count.load(Ordering::Relaxed)
    }

    pub fn hang_count(&self) -> u64 {
        self.shared.hang_count.load(Ordering::Relaxed)
    }

    /// A copy of every arrival so far (both paths), in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.arrivals.lock().expect("not poisoned").clone()
    }

    /// Distinct delivery ids received on `/ok/...`.
    pub fn unique_ok(&self) -> usize {
        let arrivals = self.shared.arrivals.lock().expect("not poisoned");
        arrivals
            .iter()
            .filter(|a| !a.hung)
            .map(|a| a.delivery.as_str())
            .collect::<HashSet<_>>()
            .len()
    }

    /// Polls until `/ok/...` has received at least `n` requests, advancing `bar`. Fails
    /// after `deadline` with how far it got.
    pub async fn wait_ok(
        &self,
        n: u64,
        deadline: Duration,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let give_up = Instant::now() + deadline;
        loop {
            let got = self.ok_count();
            bar.set_position(got.min(n));
            if got >= n {
                return Ok(());
            }
            if Instant::now() > give_up {
                bail!("the receiver got {got} of {n} deliveries within {deadline:?}");
            }
            // Polling only decides when to stop waiting; figures come from arrival times.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Polls until `/ok/...` has seen `n` distinct delivery ids (duplicates after a crash
    /// do not count twice).
    pub async fn wait_unique(
        &self,
        n: usize,
        deadline: Duration,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let give_up = Instant::now() + deadline;
        loop {
            // Counting distinct ids is costly; only do it once the raw count could be enough.
            let raw = self.ok_count() as usize;
            bar.set_position(raw.min(n) as u64);
            if raw >= n && self.unique_ok() >= n {
                return Ok(());
            }
            if Instant::now() > give_up {
                bail!(
                    "the receiver got {} of {n} distinct deliveries within {deadline:?}",
                    self.unique_ok()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn record(shared: &Shared, tag: u32, hung: bool, headers: &HeaderMap, body: &[u8]) {
    let at = Instant::now();
    let wall_us = unix_us();
    let wall_ms = wall_us / 1000;
    let delivery = headers
        .get("x-webhook-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let seq = parsed
        .as_ref()
        .and_then(|b| b.data.as_ref()?.metadata.as_ref()?.seq);
    let event_ms = parsed
        .as_ref()
        .and_then(|b| parse_rfc3339_ms(b.timestamp.as_deref()?));
    let sent_at_us = parsed
        .as_ref()
        .and_then(|b| b.data.as_ref()?.metadata.as_ref()?.sent_at_us);
    let arrival = Arrival {
        tag,
        hung,
        at,
        wall_ms,
        delivery,
        seq,
        event_ms,
        wall_us,
        sent_at_us,
    };
    shared.arrivals.lock().expect("not poisoned").push(arrival);
}

async fn ok(
    State(shared): State<Arc<Shared>>,
    Path(tag): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&shared, tag, false, &headers, &body);
    shared.ok_count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

async fn gated(
    State(shared): State<Arc<Shared>>,
    Path(tag): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut gate = shared.gate.clone();
    if gate.wait_for(|open| *open).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    ok(State(shared), Path(tag), headers, body).await
}

async fn hang(
    State(shared): State<Arc<Shared>>,
    Path(tag): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&shared, tag, true, &headers, &body);
    shared.hang_count.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(shared.hang_for).await;
    StatusCode::OK
}

/// The wall clock in Unix microseconds (the stamp of a request and of its arrival).
pub fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (hookd's timestamp format) to Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        std::str::from_utf8(b.get(from..from + len)?)
            .ok()?
            .parse()
            .ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || *b.last()? != b'Z' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let millis = if b[19] == b'.' { num(20, 3)? } else { 0 };
    // Days from the civil date (H. Hinnant's algorithm), proleptic Gregorian calendar.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_ms;

    #[test]
    fn timestamps_become_unix_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2025-01-15T10:30:00.123Z"),
            Some(1_736_937_000_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T23:59:59Z"),
            Some(1_709_251_199_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
