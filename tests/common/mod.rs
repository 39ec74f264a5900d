//! Test harness: the real server on port 0 with its own temp database, a real receiver on
//! loopback, the real binary for crash tests, and polling waits instead of fixed sleeps.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

pub mod browser;
pub mod receiver;
pub mod smtp;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hookd::config::ServeArgs;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use receiver::{Gate, Receiver, Reply};
pub use smtp::{Mail, SmtpServer, SmtpTls};

/// The admin key every test server accepts.
pub const KEY: &str = "test-admin-key-0123456789";

/// The fields a 4xx answer's `error.details` names (none when it has no details).
pub fn bad_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .map(|d| d["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Settings for tests: loopback receivers allowed, no rate limits, short timeout.
pub fn test_args(data_dir: &Path) -> ServeArgs {
    ServeArgs {
        data_dir: Some(data_dir.to_owned()),
        api_key: Some(KEY.into()),
        allow_http: Some(true),
        allow_networks: Some("127.0.0.0/8".into()),
        host_rate_limit: Some(0),
        public_rate_limit: Some(0),
        delivery_timeout_ms: Some(2000),
        ..ServeArgs::default()
    }
}

/// A client of one server's API, with the admin key.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

/// A running server in this process.
pub struct TestApp {
    pub addr: SocketAddr,
    pub api: Api,
    pub data_dir: PathBuf,
    dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts a server on a fresh temp database with [`test_args`].
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let args = test_args(dir.path());
    spawn_app_with(args, Some(dir)).await
}

/// Starts a server with these settings (the listener is always port 0).
pub async fn spawn_app_with(args: ServeArgs, dir: Option<TempDir>) -> TestApp {
    // `HOOKD_TEST_LOG=1 RUST_LOG=hookd=debug cargo test ...` shows the servers' logs.
    if std::env::var("HOOKD_TEST_LOG").is_ok() {
        hookd::telemetry::init_logging(hookd::config::LogFormat::Text);
    }
    let config = args.into_config().expect("test settings are valid");
    let https = config.tls.is_some();
    let data_dir = config.data_dir.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(hookd::run(config, listener, async move {
        let _ = stopped.await;
    }));
    // A server with a certificate is reached over HTTPS, trusting the tests' CA (which
    // must have signed it).
    let api = if https {
        Api {
            base: format!("https://{addr}"),
            client: tls::client_trusting_clinic_ca().build().unwrap(),
        }
    } else {
        Api::new(&format!("http://{addr}"))
    };
    let app = TestApp {
        addr,
        api,
        data_dir,
        dir,
        shutdown: Some(shutdown),
        task: Some(task),
    };
    app.wait_ready(Duration::from_secs(10)).await;
    app
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Waits until the server answers `/readyz`.
    pub async fn wait_ready(&self, limit: Duration) {
        wait_until("the server is ready", limit, || async {
            self.client
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// How many of the webhook's deliveries have this status.
    pub async fn count_with_status(&self, survey: &str, webhook: &str, status: &str) -> usize {
        self.deliveries(survey, webhook)
            .await
            .iter()
            .filter(|d| d["status"] == status)
            .count()
    }

    /// Sends a request with the admin key; answers the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(KEY, method, path, body).await
    }

    /// [`Self::call`] with another key.
    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// The Prometheus text of `/metrics` (public unless a metrics key is set).
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a survey with a required rating and an optional text question; returns its id.
    pub async fn create_survey(&self) -> String {
        let (status, body) = self
            .post(
                "/api/surveys",
                json!({"title": "Discharge survey", "questions": [
                    {"id": "stars", "type": "rating", "text": "How was your stay?", "required": true},
                    {"id": "note", "type": "text", "text": "Anything else?"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a survey with one question of every type (`stars` required); returns its id.
    pub async fn create_survey_of_every_type(&self, title: &str) -> String {
        let (status, body) = self
            .post(
                "/api/surveys",
                json!({"title": title, "questions": [
                    {"id": "stars", "type": "rating", "text": "How was your stay?", "required": true},
                    {"id": "ward", "type": "single_choice", "text": "Which ward were you on?",
                     "choices": [{"id": "north", "label": "North"}, {"id": "south", "label": "South"}]},
                    {"id": "topics", "type": "multi_choice", "text": "What went well?",
                     "choices": [{"id": "food", "label": "Food"}, {"id": "care", "label": "Care"}]},
                    {"id": "nps", "type": "nps", "text": "Would you recommend us?"},
                    {"id": "note", "type": "text", "text": "Anything else?"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Registers a webhook to `url` for completed responses; returns its id.
    pub async fn create_webhook(&self, survey: &str, url: &str, extra: Value) -> String {
        let mut body = json!({"name": "HIS", "url": url, "events": ["survey.response_completed"]});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let (status, created) = self
            .post(&format!("/api/surveys/{survey}/webhooks"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The usual scene: a survey and one webhook for its completed responses to `receiver`'s
    /// `/hook`, with `extra` fields; returns (survey, webhook).
    pub async fn survey_with_webhook(&self, receiver: &Receiver, extra: Value) -> (String, String) {
        let survey = self.create_survey().await;
        let webhook = self
            .create_webhook(&survey, &receiver.url("/hook"), extra)
            .await;
        (survey, webhook)
    }

    /// Submits a completed kiosk response; returns its id.
    pub async fn complete_response(&self, survey: &str, stars: u8) -> String {
        let (status, body) = self
            .post(
                &format!("/api/surveys/{survey}/responses"),
                json!({"answers": {"stars": {"value": stars}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A survey with a webhook to `receiver` and one delivery that succeeded: (survey,
    /// webhook, delivery).
    pub async fn one_delivered(&self, receiver: &Receiver) -> (String, String, String) {
        let (survey, webhook) = self.survey_with_webhook(receiver, json!({})).await;
        self.complete_response(&survey, 5).await;
        wait_until(
            "the delivery succeeded",
            Duration::from_secs(20),
            || async { self.count_with_status(&survey, &webhook, "succeeded").await == 1 },
        )
        .await;
        let delivery = self.deliveries(&survey, &webhook).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (survey, webhook, delivery)
    }

    /// The webhook's deliveries (newest first), up to 200.
    pub async fn deliveries(&self, survey: &str, webhook: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!(
                "/api/surveys/{survey}/webhooks/{webhook}/deliveries?limit=200"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

impl TestApp {
    /// A connection to the app's database, for checking what was stored.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data_dir.join("hookd.db")).unwrap()
    }

    /// Rows in `table` of the app's database.
    pub fn rows(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    /// Stops the server as SIGTERM would and waits for it; keeps the data directory.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let dir = self.dir.take();
        let args = test_args(&self.data_dir);
        spawn_app_with(args, dir).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Polls `check` until it holds, failing the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `hookd` binary, for crash and signal tests.
pub fn hookd_binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
}

/// Runs `hookd ARGS --data-dir DIR` off the async threads (a server may share them).
pub async fn run_cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let data_dir = data_dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        hookd_binary()
            .args(&args)
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("HOOKD_DATA_DIR")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Creates a key of `role` with `hookd keys create` and waits until the server beside it
/// accepts it; returns its id and its secret.
pub async fn create_key(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let out = run_cli(
        &app.data_dir,
        &["keys", "create", "--name", name, "--role", role],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let id = stderr
        .split_whitespace()
        .skip_while(|word| *word != "key")
        .nth(1)
        .expect("the key's id is printed")
        .to_owned();
    wait_until(
        "the server knows the new key",
        Duration::from_secs(10),
        || async {
            app.call_as(&secret, Method::GET, "/api/surveys/none", None)
                .await
                .0
                != StatusCode::UNAUTHORIZED
        },
    )
    .await;
    (id, secret)
}

/// What `hookd::run` says when it cannot start with these settings (it must stop at once).
pub async fn start_error(args: ServeArgs) -> String {
    let config = args.into_config().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        hookd::run(config, listener, std::future::pending()),
    )
    .await
    .expect("the start stops at once");
    format!("{:#}", outcome.expect_err("the start is refused"))
}

/// A free loopback port (for the binary, which cannot be handed a listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends a signal (`TERM`, `KILL`, `INT`) to a child process with the system's `kill`.
pub fn send_signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// The real binary serving on a free loopback port, for crash and signal tests.
pub struct ProcessApp {
    pub api: Api,
    pub child: std::process::Child,
}

impl std::ops::Deref for ProcessApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ProcessApp {
    /// Starts `hookd serve` on `data_dir` with the test settings and waits until it is ready.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[]).await
    }

    /// [`Self::start`] with more settings (`HOOKD_*` variables).
    pub async fn start_with(data_dir: &Path, settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = hookd_binary()
            .envs(settings.iter().copied())
            .arg("serve")
            .env("HOOKD_DATA_DIR", data_dir)
            .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKD_API_KEY", KEY)
            .env("HOOKD_ALLOW_HTTP", "true")
            .env("HOOKD_ALLOW_NETWORKS", "127.0.0.0/8")
            .env("HOOKD_HOST_RATE_LIMIT", "0")
            .env("HOOKD_DELIVERY_TIMEOUT_MS", "5000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let app = Self {
            api: Api::new(&format!("http://127.0.0.1:{port}")),
            child,
        };
        app.wait_ready(Duration::from_secs(20)).await;
        app
    }

    /// Sends a signal and waits for the process to exit; returns its exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        send_signal(&self.child, signal);
        self.child.wait().unwrap()
    }
}

impl Drop for ProcessApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
