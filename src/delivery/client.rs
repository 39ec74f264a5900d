//! Sending one attempt: the SSRF-safe HTTP client, the per-host rate limit and signing.
//!
//! Every request — scheduled, retried or a test — goes through [`Sender::attempt`], so the
//! same rules apply to all: the URL's host is judged again (IP literals skip the resolver),
//! every address DNS returns is judged at connect time, redirects are not followed, the
//! per-host limits (a rate, and [`MAX_IN_FLIGHT_PER_HOST`] requests at once) delay, never
//! fail, the attempt, and the body is signed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::retry::parse_retry_after;
use super::signing;
use crate::client_tls::{self, ClientTls};
use crate::config::messaging::Hidden;
use crate::domain::ssrf::NetworkPolicy;
use crate::domain::time::{Millis, now_ms};
use crate::domain::{CustomHeaders, DeliveryId, SigningSecrets, WebhookUrl};

/// Response bodies are kept up to this many bytes.
pub const MAX_RESPONSE_BODY: usize = 4096;

/// Where and how one webhook's requests go.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: WebhookUrl,
    /// As stored; the ones that sign are chosen when the request is made.
    pub secrets: SigningSecrets,
    pub headers: CustomHeaders,
    pub style: RequestStyle,
}

/// What a request says beside its body.
#[derive(Debug, Clone)]
pub enum RequestStyle {
    /// A webhook's: `X-Webhook-*`, signatures and custom headers (SPEC §4).
    Webhook,
    /// The SMS gateway's (SPEC §10): a bearer token, and `Idempotency-Key: <message id>`
    /// so that a resent message is recognisably the same.
    SmsGateway { token: Option<Hidden> },
}

/// What a webhook's next request should do, as its actor last said. Attempts read it when
/// they send, not when they were started: a request that waited for its host's rate limit
/// goes out with the settings (and secrets) of that moment, or not at all.
#[derive(Debug, Clone)]
pub enum Route {
    Send(Target),
    /// The stored URL no longer passes the policy: each attempt fails with this.
    Refuse(String),
    /// The email queue: each job goes to the mail server ([`super::mail::Mailer`]).
    Mail,
    /// The webhook stopped (deactivated, disabled, deleted, shutdown): send nothing more.
    Withdrawn,
}

impl From<Result<Target, String>> for Route {
    fn from(target: Result<Target, String>) -> Self {
        match target {
            Ok(target) => Self::Send(target),
            Err(message) => Self::Refuse(message),
        }
    }
}

/// The latest [`Route`] of a webhook, shared by its actor (which writes it) and its
/// attempts (which read it at send time).
pub type RouteWatch = tokio::sync::watch::Receiver<Arc<Route>>;

/// A route that never changes (test sends).
pub fn fixed_route(route: Route) -> RouteWatch {
    tokio::sync::watch::channel(Arc::new(route)).1
}

/// What one attempt saw. A receiver's error is an outcome here, not a Rust error.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub delivery_id: DeliveryId,
    pub started_at: Millis,
    /// How long it took, as measured; the attempt's record keeps whole milliseconds
    /// ([`Self::duration_ms`]), the metrics the measured time.
    pub duration: Duration,
    pub status_code: Option<u16>,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Option<Duration>,
    /// Transport or policy error (never containing the URL, body or secret).
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub response_truncated: bool,
    /// The mail server rejected the message for good (an SMTP 5xx reply).
    pub permanent: bool,
}

impl AttemptReport {
    /// The duration in whole milliseconds, as the attempt's record stores it.
    pub fn duration_ms(&self) -> u32 {
        u32::try_from(self.duration.as_millis()).unwrap_or(u32::MAX)
    }

    /// An attempt starting now, nothing seen yet.
    pub(super) fn starting(delivery_id: DeliveryId) -> Self {
        Self {
            delivery_id,
            started_at: now_ms(),
            duration: Duration::ZERO,
            status_code: None,
            retry_after: None,
            error: None,
            response_body: None,
            response_truncated: false,
            permanent: false,
        }
    }

    /// The report of an attempt refused before any request was made.
    pub fn refused(delivery_id: DeliveryId, message: &str) -> Self {
        Self {
            error: Some(format!("refused: {message}")),
            ..Self::starting(delivery_id)
        }
    }

    pub fn succeeded(&self) -> bool {
        self.status_code
            .is_some_and(|code| (200..300).contains(&code))
    }
}

type HostLimiter = DefaultKeyedRateLimiter<String>;

/// Requests in flight at once to one destination host, all its webhooks together.
/// `HOOKD_MAX_IN_FLIGHT` bounds one webhook; this bounds a host with many (thousands of
/// webhooks pointing at one HIS would otherwise open thousands of connections at once,
/// about 10 KB of memory each). It is 16 webhooks' worth at the default in-flight limit,
/// so one hanging webhook on a host leaves the others most of it.
pub const MAX_IN_FLIGHT_PER_HOST: usize = 256;

/// The shared sending machinery: one pooled client and one per-host limiter for all
/// webhooks. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    limiter: Option<Arc<HostLimiter>>,
    slots: Arc<HostSlots>,
    policy: Arc<NetworkPolicy>,
    user_agent: HeaderValue,
}

impl Sender {
    pub fn new(
        policy: NetworkPolicy,
        timeout: Duration,
        host_rate_limit: Option<NonZeroU32>,
        tls: &ClientTls,
    ) -> reqwest::Result<Self> {
        let policy = Arc::new(policy);
        let client = tls
            .apply(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(SsrfResolver {
                policy: policy.clone(),
            })
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            // As many idle connections as a host can have requests in flight: fewer would
            // close and reopen connections on every burst. Idle ones close after 90 s.
            .pool_max_idle_per_host(MAX_IN_FLIGHT_PER_HOST)
            .build()?;
        let limiter =
            host_rate_limit.map(|rate| Arc::new(RateLimiter::keyed(Quota::per_second(rate))));
        let user_agent = HeaderValue::from_static(concat!("hookd/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            client,
            limiter,
            slots: Arc::default(),
            policy,
            user_agent,
        })
    }

    /// Drops rate-limit and in-flight state of hosts not seen lately (call now and then).
    pub fn forget_idle_hosts(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
        self.slots.forget_idle();
    }

    /// Makes one attempt of a delivery and reports what happened; `None` when the route
    /// was withdrawn before the request went out (nothing was sent).
    pub async fn attempt(
        &self,
        route: &RouteWatch,
        delivery_id: DeliveryId,
        event_type: &str,
        body: &str,
    ) -> Option<AttemptReport> {
        let host = match self.usable(&route.borrow(), delivery_id) {
            Ok(target) => target.url.host_key(),
            Err(report) => return report,
        };
        let _slot = self.slots.acquire(&host).await;
        if let Some(limiter) = &self.limiter {
            limiter.until_key_ready(&host).await;
        }
        // The route as it is now, after the waits: the settings of the moment of sending.
        let route = route.borrow().clone();
        let target = match self.usable(&route, delivery_id) {
            Ok(target) => target,
            Err(report) => return report,
        };
        // Boxed: the request's state (a kilobyte) is allocated only now, so an attempt
        // waiting above for its host's slot holds a few hundred bytes. With thousands of
        // webhooks due at once, most of their attempts wait there.
        Some(Box::pin(self.send(target, delivery_id, event_type, body)).await)
    }

    /// The target to send to, or what to report instead.
    fn usable<'r>(
        &self,
        route: &'r Route,
        delivery_id: DeliveryId,
    ) -> Result<&'r Target, Option<AttemptReport>> {
        match route {
            Route::Withdrawn => Err(None),
            Route::Refuse(message) => Err(Some(AttemptReport::refused(delivery_id, message))),
            Route::Mail => Err(Some(AttemptReport::refused(
                delivery_id,
                "an email goes to the mail server, not over HTTP",
            ))),
            Route::Send(target) => match target.url.check_host(&self.policy) {
                Ok(()) => Ok(target),
                Err(message) => Err(Some(AttemptReport::refused(delivery_id, &message))),
            },
        }
    }

    async fn send(
        &self,
        target: &Target,
        delivery_id: DeliveryId,
        event_type: &str,
        body: &str,
    ) -> AttemptReport {
        let mut report = AttemptReport::starting(delivery_id);
        report.started_at = now_ms();
        let started = Instant::now();
        // Built whole rather than through a `RequestBuilder`, which would copy the headers
        // into a map of its own.
        let mut request = reqwest::Request::new(Method::POST, target.url.as_url().clone());
        *request.headers_mut() = self.headers(target, delivery_id, event_type, body);
        *request.body_mut() = Some(body.to_owned().into());
        let sent = self.client.execute(request).await;
        match sent {
            Ok(response) => read_response(response, &mut report).await,
            Err(error) => report.error = Some(describe(&error)),
        }
        report.duration = started.elapsed();
        report
    }

    fn headers(
        &self,
        target: &Target,
        delivery_id: DeliveryId,
        event_type: &str,
        body: &str,
    ) -> HeaderMap {
        let mut headers = match &target.style {
            RequestStyle::Webhook => webhook_headers(target, delivery_id, event_type, body),
            RequestStyle::SmsGateway { token } => gateway_headers(token.as_ref(), delivery_id),
        };
        // Last: a custom header never replaces these.
        headers.insert(reqwest::header::USER_AGENT, self.user_agent.clone());
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }
}

/// A webhook's custom headers, `X-Webhook-*` and its signatures (SPEC §4).
fn webhook_headers(
    target: &Target,
    delivery_id: DeliveryId,
    event_type: &str,
    body: &str,
) -> HeaderMap {
    // Room for the custom headers, the six below and the three every request gets (user
    // agent, content type, and reqwest's `Accept`): the map is not grown on the way.
    let mut headers = HeaderMap::with_capacity(target.headers.as_map().len() + 9);
    for (name, value) in target.headers.as_map() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    let id = delivery_id.to_string();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("x-webhook-event", event_type);
    set("x-webhook-delivery", &id);
    let now = now_ms();
    let timestamp = now / 1000;
    let secrets = target.secrets.at(now);
    if let Some(signed) = signing::sign(&secrets, &id, timestamp, body.as_bytes()) {
        set("x-webhook-signature", &signed.x_webhook_signature);
        set("webhook-id", &id);
        set("webhook-timestamp", &timestamp.to_string());
        set("webhook-signature", &signed.webhook_signature);
    }
    headers
}

/// The SMS gateway's (SPEC §10): its bearer token and the message id as `Idempotency-Key`.
fn gateway_headers(token: Option<&Hidden>, delivery_id: DeliveryId) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(Ok(mut bearer)) =
        token.map(|t| HeaderValue::from_str(&format!("Bearer {}", t.expose())))
    {
        bearer.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
    }
    if let Ok(id) = HeaderValue::from_str(&delivery_id.to_string()) {
        headers.insert("idempotency-key", id);
    }
    headers
}

/// The in-flight slots of each destination host (see [`MAX_IN_FLIGHT_PER_HOST`]).
#[derive(Default)]
struct HostSlots {
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl HostSlots {
    /// Waits for a free slot of `host`; the slot is free again when the permit drops.
    async fn acquire(&self, host: &str) -> OwnedSemaphorePermit {
        let slots = self
            .hosts
            .lock()
            .expect("not poisoned")
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_HOST)))
            .clone();
        slots
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Forgets hosts with nothing in flight.
    fn forget_idle(&self) {
        self.hosts.lock().expect("not poisoned").retain(|_, slots| {
            Arc::strong_count(slots) > 1 || slots.available_permits() < MAX_IN_FLIGHT_PER_HOST
        });
    }
}

async fn read_response(mut response: reqwest::Response, report: &mut AttemptReport) {
    let status = response.status().as_u16();
    report.status_code = Some(status);
    if status == 429 || status == 503 {
        report.retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
    }
    if !(200..300).contains(&status) {
        report.error = Some(format!("receiver answered HTTP {status}"));
    }
    let mut kept = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BODY - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    report.response_truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                if report.error.is_none() && !report.succeeded() {
                    report.error = Some(describe(&error));
                }
                break;
            }
        }
    }
    if !kept.is_empty() {
        report.response_body = Some(String::from_utf8_lossy(&kept).into_owned());
    }
}

/// A transport error in words, without the URL (it may carry a token in its query).
fn describe(error: &reqwest::Error) -> String {
    if let Some(tls) = client_tls::describe_failure(error) {
        return tls;
    }
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// Resolves host names and keeps only addresses the policy permits: the connection can go
/// nowhere else, which also defeats DNS rebinding.
struct SsrfResolver {
    policy: Arc<NetworkPolicy>,
}

impl Resolve for SsrfResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let permitted: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| policy.permits_ip(addr.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(format!("{host} resolves to no permitted address").into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Route, Sender, fixed_route};
    use crate::domain::DeliveryId;
    use crate::domain::ssrf::NetworkPolicy;

    /// Thousands of webhooks with a delivery due at once leave most of their attempts
    /// waiting for their host's slot; each waits in a task the size of its future. The
    /// request's own state (about a kilobyte, reqwest's and hyper's) is allocated only once
    /// the waits are over, so a waiting attempt stays a few hundred bytes.
    #[tokio::test]
    async fn an_attempt_waiting_for_its_turn_does_not_carry_the_request_inline() {
        let sender = Sender::new(
            NetworkPolicy::default(),
            Duration::from_secs(5),
            None,
            &Default::default(),
        )
        .unwrap();
        let route = fixed_route(Route::Withdrawn);
        let attempt = sender.attempt(&route, DeliveryId::new(), "survey.response_completed", "{}");
        let size = std::mem::size_of_val(&attempt);
        assert!(size <= 512, "an attempt's future is {size} bytes");
    }
}
