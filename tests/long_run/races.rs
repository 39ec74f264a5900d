//! Races between the API and the engine end in the state the store says.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::WAIT;
use crate::common::{Gate, Receiver, Reply, spawn_app_with, test_args, wait_until};

#[tokio::test]
async fn re_enabling_a_webhook_while_its_actor_is_still_stopping_leaves_it_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.max_in_flight = Some(2);
    let app = spawn_app_with(args, Some(dir)).await;
    let gate = Gate::new();
    let held = gate.clone();
    // One attempt is held while the other's 410 disables the webhook: its actor is then
    // stopping, but not gone, when the operator re-enables the webhook.
    let receiver = Receiver::scripted(move |_, n| match n {
        0 => Reply::ok().held(&held),
        1 => Reply::status(410),
        _ => Reply::ok(),
    })
    .await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    app.complete_response(&survey, 1).await;
    app.complete_response(&survey, 2).await;
    wait_until("the 410 disabled the webhook", WAIT, || async {
        app.get(&path).await.1["isActive"] == false
    })
    .await;
    let (status, _) = app.patch(&path, json!({"isActive": true})).await;
    assert_eq!(status, StatusCode::OK);
    gate.open();
    app.complete_response(&survey, 3).await;
    wait_until("every delivery succeeded", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 3
    })
    .await;
}

#[tokio::test]
async fn nothing_is_sent_after_deactivation_nor_after_delete_with_attempts_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.max_in_flight = Some(4);
    // One request a second: the attempts behind the first wait for the host's limit.
    args.host_rate_limit = Some(1);
    let app = spawn_app_with(args, Some(dir)).await;
    let gate = Gate::new();
    let held = gate.clone();
    let receiver = Receiver::scripted(move |_, _| Reply::ok().held(&held)).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    for stars in 1..=3 {
        app.complete_response(&survey, stars).await;
    }
    wait_until("the first attempt is held", WAIT, || async {
        receiver.count() == 1
    })
    .await;

    let (status, _) = app.patch(&path, json!({"isActive": false})).await;
    assert_eq!(status, StatusCode::OK);
    // The host's limit lets one more request through each second: none may go now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.count(),
        1,
        "deactivating stops new attempts at once"
    );

    let (status, _) = app.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    gate.open();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.count(),
        1,
        "the request in flight at the delete was the last"
    );
}
