//! Signing secrets are worked out per request, from the stored secrets and the clock.

use reqwest::StatusCode;
use serde_json::json;

use crate::WAIT;
use crate::common::{Receiver, spawn_app_with, test_args, wait_until};

const OLD: &str = "old-secret-0123456789";
const NEW: &str = "new-secret-0123456789";

#[tokio::test]
async fn the_previous_secret_stops_signing_when_its_overlap_ends_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.secret_overlap_seconds = Some(2);
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::start().await;
    let (survey, webhook) = app
        .survey_with_webhook(&receiver, json!({"secret": OLD}))
        .await;
    let (status, _) = app
        .patch(
            &format!("/api/surveys/{survey}/webhooks/{webhook}"),
            json!({"secret": NEW}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let changed = std::time::Instant::now();

    app.complete_response(&survey, 4).await;
    wait_until("the first delivery", WAIT, || async {
        receiver.count() == 1
    })
    .await;
    let during = receiver.requests()[0].header("webhook-signature").unwrap();
    assert_eq!(
        during.split(' ').count(),
        2,
        "both secrets sign during the overlap"
    );

    // Events keep coming; once the overlap is over, only the new secret signs.
    wait_until(
        "a delivery signed by the new secret alone",
        WAIT,
        || async {
            let n = receiver.count();
            app.complete_response(&survey, 4).await;
            wait_until("its delivery", WAIT, || async { receiver.count() > n }).await;
            let last = receiver.requests().last().unwrap().clone();
            last.header("webhook-signature").unwrap().split(' ').count() == 1
        },
    )
    .await;
    assert!(
        changed.elapsed() >= std::time::Duration::from_secs(2),
        "not before the overlap ended"
    );
}

#[tokio::test]
async fn removing_the_secret_stops_all_signing_at_once() {
    let app = crate::common::spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, webhook) = app
        .survey_with_webhook(&receiver, json!({"secret": OLD}))
        .await;
    let (status, view) = app
        .patch(
            &format!("/api/surveys/{survey}/webhooks/{webhook}"),
            json!({"secret": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["hasSecret"], false);
    app.complete_response(&survey, 4).await;
    wait_until("the delivery", WAIT, || async { receiver.count() == 1 }).await;
    let request = &receiver.requests()[0];
    assert_eq!(request.header("x-webhook-signature"), None);
    assert_eq!(request.header("webhook-signature"), None);
}
