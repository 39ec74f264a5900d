//! The operators' public routes: the web page at `/` and `/metrics`.
//!
//! The page is an HTML shell compiled into the binary (`assets/`), with its style and script
//! inline and allowed by hash in its Content-Security-Policy, so nothing else can run in it
//! and nothing is fetched from elsewhere. It holds no data: it asks the operator for an API
//! key and reads the admin API with it. `/metrics` is open like `/healthz` (scrapers carry
//! no key); it shows counts only, never ids, payloads or answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use crate::domain::time::now_ms;
use crate::store::overview;
use crate::telemetry::QueueGauges;
use crate::views::QueueView;

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

/// Prometheus text: attempts by outcome and their duration (recorded as they happen), and,
/// read at scrape time, queue depth by status, the oldest pending delivery's age, webhooks
/// disabled by hookd and delivery actors running.
#[utoipa::path(get, path = "/metrics", tag = "meta", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics(State(app): State<AppState>) -> Response {
    let now = now_ms();
    match app
        .store
        .read(move |c| overview::queue_summary(c, now))
        .await
    {
        Ok(rows) => {
            let queue = QueueView::new(&rows, now);
            let actors = app.engine.actor_count().await as u64;
            let depth = [
                ("pending", queue.totals.pending),
                ("delivering", queue.totals.delivering),
                ("succeeded", queue.totals.succeeded),
                ("failed", queue.totals.failed),
            ];
            app.telemetry.set_queue(&QueueGauges {
                depth,
                oldest_pending_secs: queue.oldest_pending_age_seconds.unwrap_or(0) as f64,
                disabled: queue.disabled_webhooks,
                expired_claims: queue.expired_claims,
                actors,
            });
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: could not read the queue; serving the last values");
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.telemetry.render(),
    )
        .into_response()
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
