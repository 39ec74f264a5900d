//! A real HTTP receiver on loopback that records every request and answers as the test
//! scripts it: fail N times, 429 with Retry-After, 410, 301, sleep, large bodies, or hold
//! the answer until the test lets it go.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Holds the requests answered with [`Reply::held`] until the test opens it: a race is
/// made deterministic by keeping one side waiting until the other has moved.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    /// Lets every held request (and every later one) through.
    pub fn open(&self) {
        self.0.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    /// Lets one held request through.
    pub fn release_one(&self) {
        self.0.add_permits(1);
    }

    async fn pass(&self) {
        if let Ok(permit) = self.0.acquire().await {
            permit.forget(); // one permit lets one answer go
        }
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
    pub gate: Option<Gate>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
            gate: None,
        }
    }

    pub fn ok() -> Self {
        Self::status(200)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers only once `gate` is open.
    pub fn held(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

type Script = Box<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<Script>>,
    /// Requests being answered now, and the most seen at once.
    concurrency: Arc<Mutex<(usize, usize)>>,
}

/// The receiver. `script(request, n)` decides each answer; `n` counts requests from 0.
pub struct Receiver {
    pub addr: SocketAddr,
    scheme: &'static str,
    shared: Shared,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers 200 to everything.
    pub async fn start() -> Self {
        Self::scripted(|_, _| Reply::ok()).await
    }

    pub async fn scripted(
        script: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let shared = Shared {
            requests: Arc::default(),
            script: Arc::new(Mutex::new(Box::new(script))),
            concurrency: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            scheme: "http",
            shared,
            _task: task,
        }
    }

    /// A receiver answering 200 over HTTPS with these TLS settings.
    pub async fn tls(config: rustls::ServerConfig) -> Self {
        let shared = Shared {
            requests: Arc::default(),
            script: Arc::new(Mutex::new(Box::new(|_: &Recorded, _: usize| Reply::ok()))),
            concurrency: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        let task = tokio::spawn(async move {
            server.serve(app.into_make_service()).await.unwrap();
        });
        Self {
            addr,
            scheme: "https",
            shared,
            _task: task,
        }
    }

    /// Changes how the receiver answers from now on (a receiver "heals").
    pub fn set_script(&self, script: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Box::new(script);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The most requests this receiver was answering at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.shared.concurrency.lock().unwrap().1
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// How many requests carried each `X-Webhook-Delivery` id.
    pub fn per_delivery(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for request in self.requests() {
            *counts
                .entry(request.header("x-webhook-delivery").unwrap_or_default())
                .or_default() += 1;
        }
        counts
    }
}

async fn record(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    };
    let reply = {
        let mut requests = shared.requests.lock().unwrap();
        let n = requests.len();
        requests.push(recorded.clone());
        (shared.script.lock().unwrap())(&recorded, n)
    };
    let _answering = Answering::start(&shared.concurrency);
    if let Some(gate) = &reply.gate {
        gate.pass().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// Counts a request as being answered until dropped (also when the client gives up).
struct Answering(Arc<Mutex<(usize, usize)>>);

impl Answering {
    fn start(concurrency: &Arc<Mutex<(usize, usize)>>) -> Self {
        let mut now = concurrency.lock().unwrap();
        now.0 += 1;
        now.1 = now.1.max(now.0);
        Self(concurrency.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.lock().unwrap().0 -= 1;
    }
}
