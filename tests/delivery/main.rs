//! The delivery engine against a real receiver (SPEC §4), by behaviour: signatures,
//! retries and their schedule, auto-disable and 410, records and repairs, isolation.

#[path = "../common/mod.rs"]
mod common;

mod disabling;
mod isolation;
mod records;
mod retries;
mod signing;

use std::time::Duration;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(20);

pub async fn delivery_detail(app: &TestApp, survey: &str, webhook: &str, id: &str) -> Value {
    let (status, body) = app
        .get(&format!(
            "/api/surveys/{survey}/webhooks/{webhook}/deliveries/{id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn webhook_view(app: &TestApp, survey: &str, webhook: &str) -> Value {
    app.get(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
        .await
        .1
}
