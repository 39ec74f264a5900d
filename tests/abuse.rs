//! Requests without a valid key are limited per client address (SPEC §9): patient links and
//! wrong keys get `HOOKD_PUBLIC_RATE_LIMIT` a second, in bursts of twice that, then 429
//! `rate_limited` with `Retry-After`; key holders and other addresses are not held back.

mod common;

use std::net::IpAddr;

use common::{KEY, spawn_app_with, test_args};
use reqwest::StatusCode;
use serde_json::Value;

/// A client whose connections come from `address` (any 127.x.y.z reaches the server).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn requests_without_a_valid_key_are_limited_per_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.public_rate_limit = Some(1); // bursts of 2, one more a second
    let app = spawn_app_with(args, Some(dir)).await;
    let from_a = client_from("127.0.0.1");

    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..12 {
        let response = from_a
            .get(app.url("/api/surveys"))
            .bearer_auth("hkd_not-a-key")
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            refused = Some((retry_after, response.json::<Value>().await.unwrap()));
        }
    }
    // A burst of two (less what the harness's readiness check took), then refusals.
    let answered = statuses
        .iter()
        .take_while(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!((1..=2).contains(&answered), "{statuses:?}");
    assert!(
        statuses[answered..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let (retry_after, body) = refused.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // The address is over its limit for patient links too, but not for a key holder.
    let link = from_a
        .get(app.url("/r/no-such-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::TOO_MANY_REQUESTS);
    let with_key = from_a
        .get(app.url("/api/surveys"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), StatusCode::OK);

    // Another address has its own allowance.
    let from_b = client_from("127.0.0.2");
    let other = from_b
        .get(app.url("/r/no-such-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let other = from_b
        .get(app.url("/api/surveys"))
        .bearer_auth("hkd_not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
}
