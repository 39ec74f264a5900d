//! The first end-to-end path: a kiosk response reaches a real receiver, signed.

mod common;

use std::time::Duration;

use common::{Receiver, spawn_app, wait_until};
use serde_json::json;

#[tokio::test]
async fn a_completed_response_is_delivered_to_the_receiver() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    app.create_webhook(
        &survey,
        &receiver.url("/hook"),
        json!({"secret": "0123456789abcdef-secret"}),
    )
    .await;
    let response = app.complete_response(&survey, 5).await;
    wait_until(
        "the receiver got the event",
        Duration::from_secs(10),
        || async { receiver.count() == 1 },
    )
    .await;
    let request = &receiver.requests()[0];
    assert_eq!(
        request.header("x-webhook-event").as_deref(),
        Some("survey.response_completed")
    );
    assert_eq!(request.json()["data"]["responseId"], json!(response));
    assert!(
        request
            .header("webhook-signature")
            .unwrap()
            .starts_with("v1,")
    );
}
