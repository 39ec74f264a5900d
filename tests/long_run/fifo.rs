//! `"ordering": "fifo"`: one attempt at a time, in the order the events were stored.

use reqwest::StatusCode;
use serde_json::json;

use crate::WAIT;
use crate::common::{Gate, Receiver, Reply, spawn_app, wait_until};

/// The webhook's deliveries, oldest first.
async fn oldest_first(app: &crate::common::TestApp, survey: &str, webhook: &str) -> Vec<String> {
    app.deliveries(survey, webhook)
        .await
        .iter()
        .rev()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sent_order(receiver: &Receiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| r.header("x-webhook-delivery").unwrap())
        .collect()
}

#[tokio::test]
async fn a_fifo_webhook_sends_one_at_a_time_in_event_order_and_a_retry_holds_back_the_rest() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, n| {
        if n == 0 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"ordering": "fifo", "retryPolicy": [1]}),
        )
        .await;
    for stars in 1..=5 {
        app.complete_response(&survey, stars).await;
    }
    wait_until("every delivery succeeded", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 5
    })
    .await;
    let order = oldest_first(&app, &survey, &webhook).await;
    let mut expected = vec![order[0].clone()];
    expected.extend(order.iter().cloned());
    assert_eq!(
        sent_order(&receiver),
        expected,
        "the head's retry went before everything behind it"
    );
    assert_eq!(receiver.max_concurrent(), 1);
}

#[tokio::test]
async fn a_failed_head_lets_the_next_go_and_a_manual_retry_goes_to_the_back() {
    let app = spawn_app().await;
    let gate = Gate::new();
    let held = gate.clone();
    let receiver = Receiver::scripted(move |_, n| match n {
        0 => Reply::status(500),
        1 => Reply::ok().held(&held),
        _ => Reply::ok(),
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"ordering": "fifo", "retryPolicy": []}),
        )
        .await;
    for stars in 1..=3 {
        app.complete_response(&survey, stars).await;
    }
    wait_until("the second delivery is held", WAIT, || async {
        receiver.count() == 2
    })
    .await;
    let order = oldest_first(&app, &survey, &webhook).await;
    let (status, _) = app
        .post(
            &format!(
                "/api/surveys/{survey}/webhooks/{webhook}/deliveries/{}/retry",
                order[0]
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    gate.open();
    wait_until("every delivery succeeded", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 3
    })
    .await;
    let expected = vec![
        order[0].clone(),
        order[1].clone(),
        order[2].clone(),
        order[0].clone(),
    ];
    assert_eq!(sent_order(&receiver), expected);
}

#[tokio::test]
async fn ordering_is_a_webhook_field_validated_shown_and_documented() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, "http://127.0.0.1:9/hook", json!({}))
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    assert_eq!(app.get(&path).await.1["ordering"], "concurrent");
    let (status, body) = app.patch(&path, json!({"ordering": "sorted"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["field"], "ordering");
    let (status, view) = app.patch(&path, json!({"ordering": "fifo"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["ordering"], "fifo");
    let (_, doc) = app.get("/api/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["WebhookView"]["properties"]["ordering"].is_object());
    assert!(schemas["WebhookInput"]["properties"]["ordering"].is_object());
}
