//! The operators' public routes: the web page at `/` and `/metrics`.
//!
//! The page is an HTML shell compiled into the binary (`assets/`), with its style and script
//! inline and allowed by hash in its Content-Security-Policy, so nothing else can run in it
//! and nothing is fetched from elsewhere. It holds no data: it asks the operator for an API
//! key and reads the admin API with it. `/metrics` is open like `/healthz` unless
//! `HOOKD_METRICS_KEY` is set; it shows counts only, never ids, payloads or answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ErrorBody};
use super::{AppState, auth};
use crate::domain::time::now_ms;
use crate::store::overview;
use crate::telemetry::QueueGauges;

const HTML: &str = include_str!("assets/operator.html");
const CSS: &str = include_str!("assets/operator.css");
const JS: &str = include_str!("assets/operator.js");

pub fn router() -> OpenApiRouter<AppState> {
    let page = Arc::new(Page::build());
    OpenApiRouter::new().routes(routes!(metrics)).route(
        "/",
        get(move || {
            let page = page.clone();
            async move { page.response() }
        }),
    )
}

/// The assembled page and the policy that lets exactly its own style and script run.
struct Page {
    html: String,
    csp: String,
}

impl Page {
    fn build() -> Self {
        let html = HTML.replace("/*STYLE*/", CSS).replace("/*SCRIPT*/", JS);
        let csp = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            sha256_source(JS),
            sha256_source(CSS)
        );
        Self { html, csp }
    }

    fn response(&self) -> Response {
        (
            [
                (CONTENT_SECURITY_POLICY, self.csp.clone()),
                (CACHE_CONTROL, "no-store".to_owned()),
                (
                    axum::http::HeaderName::from_static("referrer-policy"),
                    "no-referrer".to_owned(),
                ),
                (
                    axum::http::HeaderName::from_static("x-content-type-options"),
                    "nosniff".to_owned(),
                ),
            ],
            Html(self.html.clone()),
        )
            .into_response()
    }
}

/// A CSP source expression for an inline block.
fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Prometheus text: attempts by outcome and their duration, the writer's timings (recorded
/// as they happen), and the queue's gauges: deliveries by status, the oldest unfinished
/// delivery's age, claims past their lease, webhooks disabled by hookd and delivery actors
/// running. The gauges come from counters the store keeps as deliveries change state and
/// from the indexes of the unfinished deliveries, never from a scan of the deliveries
/// table: a scrape costs the same with a million finished deliveries stored. With
/// `HOOKD_METRICS_KEY` set, the scraper must send it as a bearer key.
#[utoipa::path(get, path = "/metrics", tag = "meta", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "HOOKD_METRICS_KEY is set and was not sent", body = ErrorBody)))]
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(expected) = &app.config.metrics_key {
        let sent = auth::presented_key(&headers);
        if !sent.is_some_and(|sent| auth::same_secret(expected, sent)) {
            return Err(ApiError::Unauthorized);
        }
    }
    let now = now_ms();
    match app.store.read(move |c| overview::totals(c, now)).await {
        Ok(totals) => {
            let actors = app.engine.actor_count().await as u64;
            let counts = totals.counts;
            let oldest = totals
                .oldest_unfinished_at
                .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
            app.telemetry.set_queue(&QueueGauges {
                depth: [
                    ("pending", counts.pending),
                    ("delivering", counts.delivering),
                    ("succeeded", counts.succeeded),
                    ("failed", counts.failed),
                ],
                oldest_pending_secs: oldest,
                disabled: totals.disabled_webhooks,
                expired_claims: totals.expired_claims,
                actors,
                messages: totals.messages.map(|(channel, c)| {
                    (channel, [c.pending + c.delivering, c.succeeded, c.failed])
                }),
            });
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: could not read the queue; serving the last values");
        }
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.telemetry.render(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_its_style_and_script_inline_and_allows_only_them() {
        let page = Page::build();
        assert!(page.html.contains(JS) && page.html.contains(CSS));
        assert!(!page.html.contains("/*SCRIPT*/") && !page.html.contains("/*STYLE*/"));
        // Nothing loaded from elsewhere: no external scripts, styles or imports.
        assert!(!page.html.contains("src=") && !page.html.contains("@import"));
        assert!(page.csp.contains(&sha256_source(JS)));
        assert!(page.csp.starts_with("default-src 'none'"));
    }
}
