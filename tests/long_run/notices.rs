//! Operators are told: webhook.disabled and webhook.enabled go to HOOKD_OPS_WEBHOOK_URL,
//! signed, retried, through the same queue as survey events.

use hookd::delivery::signing::sign;
use hookd::domain::Secret;
use reqwest::StatusCode;
use serde_json::json;

use crate::WAIT;
use crate::common::{Receiver, Reply, run_cli, spawn_app_with, test_args, wait_until};

const OPS_SECRET: &str = "ops-secret-0123456789";

#[tokio::test]
async fn disabling_and_re_enabling_a_webhook_send_signed_operational_events() {
    // The operations receiver fails its first request: the notice is retried.
    let ops = Receiver::scripted(|_, n| {
        if n == 0 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.ops_webhook_url = Some(ops.url("/ops"));
    args.ops_webhook_secret = Some(OPS_SECRET.into());
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::scripted(|_, _| Reply::status(410)).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    app.complete_response(&survey, 1).await;
    wait_until(
        "the notice of the disable arrives, retried",
        WAIT,
        || async { ops.count() == 2 },
    )
    .await;
    let notice = ops.requests()[1].clone();
    let body = notice.json();
    assert_eq!(body["eventType"], "webhook.disabled");
    assert_eq!(
        notice.header("x-webhook-event").unwrap(),
        "webhook.disabled"
    );
    assert_eq!(body["data"]["webhookId"], webhook.as_str());
    assert_eq!(body["data"]["surveyId"], survey.as_str());
    assert_eq!(body["data"]["reason"], "receiver answered 410 Gone");
    assert_eq!(body["data"]["consecutiveFailures"], 0);
    assert!(body["data"]["at"].is_string() && body["eventId"].is_string());
    let id = notice.header("webhook-id").unwrap();
    let timestamp: i64 = notice.header("webhook-timestamp").unwrap().parse().unwrap();
    let expected = sign(
        &[Secret::from_stored(OPS_SECRET.into())],
        &id,
        timestamp,
        &notice.body,
    )
    .unwrap();
    assert_eq!(
        notice.header("x-webhook-signature").unwrap(),
        expected.x_webhook_signature
    );
    assert_eq!(
        notice.header("webhook-signature").unwrap(),
        expected.webhook_signature
    );

    receiver.set_script(|_, _| Reply::ok());
    let (status, _) = app
        .patch(
            &format!("/api/surveys/{survey}/webhooks/{webhook}"),
            json!({"isActive": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_until("the notice of the re-enable arrives", WAIT, || async {
        ops.count() == 3
    })
    .await;
    let body = ops.requests()[2].json();
    assert_eq!(body["eventType"], "webhook.enabled");
    assert_eq!(body["data"]["reason"], "api");

    // Disabled again, and re-enabled from the command line beside the running server.
    receiver.set_script(|_, _| Reply::status(410));
    app.complete_response(&survey, 2).await;
    wait_until("the second notice of a disable", WAIT, || async {
        ops.count() == 4
    })
    .await;
    receiver.set_script(|_, _| Reply::ok());
    let out = run_cli(&app.data_dir, &["webhooks", "enable", &webhook]).await;
    assert!(out.status.success(), "{out:?}");
    wait_until("the notice of the re-enable from the CLI", WAIT, || async {
        ops.count() == 5
    })
    .await;
    let body = ops.requests()[4].json();
    assert_eq!(body["eventType"], "webhook.enabled");
    assert_eq!(body["data"]["reason"], "cli");

    // The operations channel is not a survey anyone can see or use.
    let (_, surveys) = app.get("/api/surveys").await;
    assert_eq!(surveys["items"].as_array().unwrap().len(), 1);
    let nil = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        app.get(&format!("/api/surveys/{nil}/webhooks")).await.0,
        StatusCode::NOT_FOUND
    );
}
