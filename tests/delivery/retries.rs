//! Failures and their schedule: retries, Retry-After, redirects, timeouts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Receiver, Reply, spawn_app, wait_until};
use crate::{WAIT, delivery_detail, webhook_view};

#[tokio::test]
async fn failures_are_retried_on_schedule_and_every_attempt_is_recorded() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, n| {
        if n < 2 {
            Reply::status(500).body("down for maintenance")
        } else {
            Reply::ok().body("thanks")
        }
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"retryPolicy": [1, 2]}),
        )
        .await;
    app.complete_response(&survey, 2).await;
    wait_until("three attempts", WAIT, || async { receiver.count() == 3 }).await;
    let times: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    assert!(
        times[1] - times[0] >= Duration::from_millis(900),
        "first retry after ~1 s (-10%)"
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(1800),
        "second retry after ~2 s (-10%)"
    );
    let id = receiver.requests()[0].header("x-webhook-delivery").unwrap();
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.header("x-webhook-delivery").as_deref() == Some(&id))
    );
    wait_until("the success is recorded", WAIT, || async {
        delivery_detail(&app, &survey, &webhook, &id).await["status"] == "succeeded"
    })
    .await;
    let detail = delivery_detail(&app, &survey, &webhook, &id).await;
    assert_eq!(detail["attemptCount"], 3);
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["statusCode"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(attempts[0]["responseBody"], "down for maintenance");
    assert_eq!(attempts[2]["responseBody"], "thanks");
    assert_eq!(attempts[0]["attempt"], 1);
    assert!(detail["completedAt"].is_string());
    assert_eq!(
        webhook_view(&app, &survey, &webhook).await["consecutiveFailures"],
        0,
        "a brief outage disables nothing"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_waits_at_least_that_long() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, n| {
        if n == 0 {
            Reply::status(429).header("Retry-After", "3")
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    app.create_webhook(&survey, &receiver.url("/hook"), json!({"retryPolicy": [1]}))
        .await;
    app.complete_response(&survey, 2).await;
    wait_until("the retry", WAIT, || async { receiver.count() == 2 }).await;
    let times: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    assert!(
        times[1] - times[0] >= Duration::from_millis(2900),
        "Retry-After 3 s beats the policy's 1 s"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_count_as_failures() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|request, _| {
        if request.path == "/hook" {
            Reply::status(301).header("Location", "/moved")
        } else {
            Reply::ok()
        }
    })
    .await;
    let (survey, webhook) = app
        .survey_with_webhook(&receiver, json!({"retryPolicy": []}))
        .await;
    app.complete_response(&survey, 3).await;
    wait_until("the delivery failed", WAIT, || async {
        app.deliveries(&survey, &webhook).await[0]["status"] == "failed"
    })
    .await;
    assert_eq!(
        receiver
            .requests()
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["/hook"]
    );
    assert_eq!(
        app.deliveries(&survey, &webhook).await[0]["lastStatusCode"],
        301
    );
}

#[tokio::test]
async fn an_attempt_that_outlasts_the_timeout_fails_as_timed_out() {
    let app = spawn_app().await; // delivery timeout 2 s
    let receiver = Receiver::scripted(|_, _| Reply::ok().after(Duration::from_secs(4))).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    let (status, detail) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "failed");
    let attempt = &detail["attempts"][0];
    assert!(
        attempt["error"].as_str().unwrap().contains("timed out"),
        "{attempt}"
    );
    assert_eq!(attempt["statusCode"], Value::Null);
    assert!(
        attempt["durationMs"].as_u64().unwrap() < 4000,
        "cut off before the receiver answered"
    );
}
