//! Auto-disable after failed deliveries and at once on 410, and re-enabling.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Receiver, Reply, spawn_app, spawn_app_with, test_args, wait_until};
use crate::{WAIT, webhook_view};

#[tokio::test]
async fn exhausted_deliveries_fail_and_enough_of_them_disable_the_webhook_until_re_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.auto_disable_after = Some(2);
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::scripted(|_, _| Reply::status(500)).await;
    let (survey, webhook) = app
        .survey_with_webhook(&receiver, json!({"retryPolicy": []}))
        .await;
    app.complete_response(&survey, 1).await;
    wait_until("the first delivery failed", WAIT, || async {
        webhook_view(&app, &survey, &webhook).await["consecutiveFailures"] == 1
    })
    .await;
    assert_eq!(
        webhook_view(&app, &survey, &webhook).await["isActive"],
        true,
        "one failure is not enough"
    );
    app.complete_response(&survey, 1).await;
    wait_until("the webhook is disabled", WAIT, || async {
        webhook_view(&app, &survey, &webhook).await["isActive"] == false
    })
    .await;
    let view = webhook_view(&app, &survey, &webhook).await;
    assert_eq!(view["consecutiveFailures"], 2);
    assert!(view["disabledAt"].is_string());
    assert!(
        view["disabledReason"]
            .as_str()
            .unwrap()
            .contains("2 consecutive")
    );
    let failed = app.deliveries(&survey, &webhook).await;
    assert!(
        failed
            .iter()
            .all(|d| d["status"] == "failed" && d["nextAttemptAt"].is_null())
    );

    app.complete_response(&survey, 1).await;
    let deliveries = app.deliveries(&survey, &webhook).await;
    assert_eq!(
        deliveries.len(),
        3,
        "a webhook disabled by hookd keeps collecting deliveries"
    );
    assert_eq!(deliveries[0]["status"], "pending", "paused");

    receiver.set_script(|_, _| Reply::ok());
    let (status, view) = app
        .patch(
            &format!("/api/surveys/{survey}/webhooks/{webhook}"),
            json!({"isActive": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            view["disabledAt"].clone(),
            view["disabledReason"].clone(),
            view["consecutiveFailures"].clone()
        ),
        (Value::Null, Value::Null, json!(0))
    );
    wait_until(
        "the paused delivery is sent without a replay",
        WAIT,
        || async { app.count_with_status(&survey, &webhook, "succeeded").await == 1 },
    )
    .await;
    let (status, replay) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/replay"),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        replay["queued"], 2,
        "the two failed deliveries stay failed until replayed"
    );
    wait_until("all three delivered", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 3
    })
    .await;
}

#[tokio::test]
async fn a_410_disables_the_webhook_at_once_and_its_deliveries_wait_paused() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(410)).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    app.complete_response(&survey, 3).await;
    wait_until("the webhook is disabled", WAIT, || async {
        webhook_view(&app, &survey, &webhook).await["isActive"] == false
    })
    .await;
    assert!(
        webhook_view(&app, &survey, &webhook).await["disabledReason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    let deliveries = app.deliveries(&survey, &webhook).await;
    assert_eq!(deliveries[0]["status"], "pending", "paused, not failed");
    assert_eq!(deliveries[0]["lastStatusCode"], 410);
    assert_eq!(receiver.count(), 1);

    receiver.set_script(|_, _| Reply::ok());
    app.patch(
        &format!("/api/surveys/{survey}/webhooks/{webhook}"),
        json!({"isActive": true}),
    )
    .await;
    wait_until("the paused delivery resumes", WAIT, || async {
        app.deliveries(&survey, &webhook).await[0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(receiver.count(), 2);
}
