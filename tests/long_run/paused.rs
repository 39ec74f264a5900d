//! A webhook disabled by hookd keeps collecting deliveries, paused; an operator's
//! switch-off collects none.

use reqwest::StatusCode;
use serde_json::json;

use crate::WAIT;
use crate::common::{Receiver, Reply, spawn_app, spawn_app_with, test_args, wait_until};

#[tokio::test]
async fn a_webhook_disabled_by_hookd_collects_paused_deliveries_and_re_enabling_sends_them_oldest_first()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.max_in_flight = Some(1);
    let app = spawn_app_with(args, Some(dir)).await;
    // The oldest delivery fails and waits 30 s for its retry; the next one's 410 disables
    // the webhook. Re-enabled, it must not keep the oldest one waiting behind the others.
    let receiver = Receiver::scripted(|_, n| match n {
        0 => Reply::status(500),
        1 => Reply::status(410),
        _ => Reply::ok(),
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"retryPolicy": [30]}),
        )
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    app.complete_response(&survey, 1).await;
    wait_until("the first attempt failed", WAIT, || async {
        receiver.count() == 1
    })
    .await;
    app.complete_response(&survey, 2).await;
    wait_until("the 410 disabled the webhook", WAIT, || async {
        app.get(&path).await.1["isActive"] == false
    })
    .await;
    for stars in 3..=5 {
        app.complete_response(&survey, stars).await;
    }
    let deliveries = app.deliveries(&survey, &webhook).await;
    assert_eq!(deliveries.len(), 5, "every new event got a delivery");
    assert!(deliveries.iter().all(|d| d["status"] == "pending"));
    assert_eq!(receiver.count(), 2, "paused: nothing more was sent");

    let (status, _) = app.patch(&path, json!({"isActive": true})).await;
    assert_eq!(status, StatusCode::OK);
    wait_until("every paused delivery is sent", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 5
    })
    .await;
    let oldest_first: Vec<String> = deliveries
        .iter()
        .rev()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let sent: Vec<String> = receiver.requests()[2..]
        .iter()
        .map(|r| r.header("x-webhook-delivery").unwrap())
        .collect();
    assert_eq!(sent, oldest_first, "in the order their events were stored");
}

#[tokio::test]
async fn an_operator_switch_off_collects_nothing_even_after_hookd_disabled_the_webhook() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(410)).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    app.complete_response(&survey, 1).await;
    wait_until("the 410 disabled the webhook", WAIT, || async {
        app.get(&path).await.1["isActive"] == false
    })
    .await;
    let (status, view) = app.patch(&path, json!({"isActive": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["disabledReason"], serde_json::Value::Null);
    app.complete_response(&survey, 2).await;
    assert_eq!(app.deliveries(&survey, &webhook).await.len(), 1);
}
