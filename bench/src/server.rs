//! The `hookd` process under test: started on a data directory and a free loopback port,
//! killed with SIGKILL (or when dropped), restarted on the same directory. Also the small
//! API client the scenarios drive it with, and its memory and CPU from `/proc`.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The admin key every bench server accepts.
pub const KEY: &str = "bench-admin-key-0123456789";

/// How to start `hookd`: which binary, which data directory, which extra settings.
#[derive(Debug, Clone)]
pub struct Launch {
    pub hookd: PathBuf,
    pub data_dir: PathBuf,
    /// Settings on top of the bench's base ones (later entries win).
    pub env: Vec<(String, String)>,
}

/// A running `hookd serve`. Dropping it kills the process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub api: Api,
    /// When the process was spawned (for "time to first delivery after a restart").
    pub spawned_at: Instant,
    /// When `/readyz` first answered 200.
    pub ready_at: Instant,
}

impl Server {
    /// Starts `hookd serve` and waits (polling) until `/readyz` answers 200.
    pub async fn start(launch: &Launch) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let log_path = launch.data_dir.with_extension("log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut command = Command::new(&launch.hookd);
        command.arg("serve");
        // The bench's settings, not whatever HOOKD_* the user's shell happens to have.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HOOKD_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOOKD_LISTEN", addr.to_string())
            .env("HOOKD_DATA_DIR", &launch.data_dir)
            .env("HOOKD_API_KEY", KEY)
            .env("HOOKD_ALLOW_HTTP", "true")
            .env("HOOKD_ALLOW_NETWORKS", "127.0.0.0/8")
            .env("HOOKD_HOST_RATE_LIMIT", "0")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", launch.hookd.display()))?;
        let mut server = Self {
            child,
            addr,
            api: Api::new(addr)?,
            spawned_at,
            ready_at: spawned_at,
        };
        server.wait_ready(&log_path).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, log_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "hookd exited with {status} before it was ready; its log:\n{}",
                    tail(log_path)
                );
            }
            if self.api.ready().await {
                self.ready_at = Instant::now();
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "hookd did not answer /readyz within 60 s; its log:\n{}",
                    tail(log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (std's `Child::kill` sends SIGKILL on Unix) and reap: a crash, not a shutdown.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Current and peak resident memory.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> Duration {
        cpu_time(&format!("/proc/{}/stat", self.pid()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port nobody listens on now. The OS could hand it out again before hookd binds it; the
/// window is tiny and `start` then fails loudly rather than measuring the wrong thing.
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    text[text.floor_char_boundary(start)..].to_owned()
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kb: u64,
    /// `VmHWM`: the peak resident size so far.
    pub hwm_kb: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse().ok())
                .unwrap_or(0)
        };
        Self {
            rss_kb: field("VmRSS:"),
            hwm_kb: field("VmHWM:"),
        }
    }

    pub fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    pub fn hwm_mb(&self) -> f64 {
        self.hwm_kb as f64 / 1024.0
    }
}

/// User + system CPU time from a `/proc/.../stat` file.
pub fn cpu_time(stat_path: &str) -> Duration {
    // Linux reports these in clock ticks of USER_HZ, which is 100 on every mainstream
    // architecture; not worth a libc dependency for sysconf.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // The command name (field 2) may contain spaces, so count fields after its ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the file: 11 and 12 after the ')'.
    let total = ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0);
    Duration::from_millis(total * 1000 / TICKS_PER_SECOND)
}

/// A webhook's `ordering`: `concurrent` (the default) or `fifo` (one attempt at a time, in
/// the order the events were stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOrder {
    Concurrent,
    Fifo,
}

/// The public API, as a kiosk or the HIS integration would call it.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            base: format!("http://{addr}"),
        })
    }

    async fn ready(&self) -> bool {
        self.client
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?;
        Ok(response.error_for_status()?.text().await?)
    }

    /// Sends a request with the admin key; answers the status and the JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Value,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method.clone(), path, Some(body)).await?;
        if status.as_u16() != want {
            bail!("{method} {path}: expected {want}, got {status}: {answer}");
        }
        Ok(answer)
    }

    /// A survey with one required rating question; returns its id.
    pub async fn create_survey(&self, title: &str) -> anyhow::Result<String> {
        let body = json!({"title": title, "questions": [
            {"id": "stars", "type": "rating", "text": "How was your stay?", "required": true},
            {"id": "note", "type": "text", "text": "Anything else?"}
        ]});
        let created = self.expect(Method::POST, "/api/surveys", body, 201).await?;
        id_of(&created)
    }

    /// A concurrent webhook for completed responses to `url`; returns its id.
    pub async fn create_webhook(
        &self,
        survey: &str,
        url: &str,
        active: bool,
    ) -> anyhow::Result<String> {
        self.create_ordered_webhook(survey, url, active, DeliveryOrder::Concurrent)
            .await
    }

    /// A webhook for completed responses to `url` with the given ordering; returns its id.
    pub async fn create_ordered_webhook(
        &self,
        survey: &str,
        url: &str,
        active: bool,
        order: DeliveryOrder,
    ) -> anyhow::Result<String> {
        let mut body = json!({"name": "HIS", "url": url, "events": ["survey.response_completed"],
            "isActive": active});
        // Sent only when not the default, so the body stays the one that servers from before
        // the field accept.
        if order == DeliveryOrder::Fifo {
            body["ordering"] = json!("fifo");
        }
        let path = format!("/api/surveys/{survey}/webhooks");
        let created = self.expect(Method::POST, &path, body, 201).await?;
        // A server from before FIFO webhooks would ignore the field and measure another thing.
        if order == DeliveryOrder::Fifo && created["ordering"] != "fifo" {
            bail!("this hookd did not create a FIFO webhook (it answered {created})");
        }
        id_of(&created)
    }

    pub async fn set_active(
        &self,
        survey: &str,
        webhook: &str,
        active: bool,
    ) -> anyhow::Result<()> {
        let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
        self.expect(Method::PATCH, &path, json!({"isActive": active}), 200)
            .await?;
        Ok(())
    }

    /// Queues every stored event of the webhook's survey to it; returns how many.
    pub async fn replay_all(&self, survey: &str, webhook: &str) -> anyhow::Result<u64> {
        let path = format!("/api/surveys/{survey}/webhooks/{webhook}/replay");
        let body = json!({"since": "2000-01-01T00:00:00.000Z"});
        let answer = self.expect(Method::POST, &path, body, 202).await?;
        answer["queued"]
            .as_u64()
            .context("replay answered without `queued`")
    }

    /// A completed response whose metadata carries `sentAtUs`, the wall clock taken just
    /// before the request is handed to the client: the client's view of latency starts
    /// there. Answers when the acknowledgement came, in Unix microseconds (`None`: refused).
    pub async fn submit_stamped(&self, survey: &str, seq: u64) -> Option<(i64, i64)> {
        let sent_at = crate::receiver::unix_us();
        let body = format!(
            r#"{{"answers":{{"stars":{{"value":5}}}},"metadata":{{"seq":{seq},"sentAtUs":{sent_at}}}}}"#
        );
        let response = self.post_response(survey, body).await?;
        let acked = crate::receiver::unix_us();
        acknowledged(response).await.then_some((sent_at, acked))
    }

    /// The kiosk submission of a completed response. `seq` travels in the response's
    /// metadata into the event body, so the receiver can tell which request it came from.
    /// Returns whether it was acknowledged (201).
    pub async fn submit(&self, survey: &str, seq: u64) -> bool {
        let body = format!(r#"{{"answers":{{"stars":{{"value":5}}}},"metadata":{{"seq":{seq}}}}}"#);
        match self.post_response(survey, body).await {
            Some(response) => acknowledged(response).await,
            None => false,
        }
    }

    /// Posts a response body to `survey`; its answer, unless the request failed.
    async fn post_response(&self, survey: &str, body: String) -> Option<reqwest::Response> {
        self.client
            .post(format!("{}/api/surveys/{survey}/responses", self.base))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .ok()
    }
}

/// Whether a response's submission was acknowledged (201). Reads the answer, so the
/// connection goes back to the pool.
async fn acknowledged(response: reqwest::Response) -> bool {
    response.status() == StatusCode::CREATED && response.bytes().await.is_ok()
}

fn id_of(body: &Value) -> anyhow::Result<String> {
    Ok(body["id"]
        .as_str()
        .with_context(|| format!("no id in {body}"))?
        .to_owned())
}
