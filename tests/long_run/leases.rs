//! Claims are leases: a claim that nobody will ever report on is released and attempted
//! again while the server runs, and operators can see claims past their lease.

use std::path::Path;
use std::time::Duration;

use hookd::domain::DeliveryId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::WAIT;
use crate::common::{Gate, KEY, Receiver, Reply, run_cli, spawn_app, wait_until};

/// Puts a delivery back into `delivering` under a claim no actor holds, its lease already
/// over: what an attempt whose task died, or whose outcome was never written, leaves.
fn abandon_claim(data_dir: &Path, delivery: &str) {
    let conn = rusqlite::Connection::open(data_dir.join("hookd.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let now = hookd::domain::time::now_ms();
    let changed = conn
        .execute(
            "UPDATE deliveries SET status = 'delivering', claim_token = 7, \
             lease_expires_at = ?2, next_attempt_at = ?2, completed_at = NULL WHERE id = ?1",
            rusqlite::params![delivery.parse::<DeliveryId>().unwrap(), now - 1_000],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn a_claim_nobody_holds_is_attempted_again_when_its_lease_runs_out_without_a_restart() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, webhook, delivery) = app.one_delivered(&receiver).await;

    abandon_claim(&app.data_dir, &delivery);
    wait_until("the abandoned claim is attempted again", WAIT, || async {
        receiver.count() == 2
    })
    .await;
    assert_eq!(
        receiver.per_delivery()[&delivery],
        2,
        "the same delivery, again"
    );
    wait_until("its new attempt is recorded", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 1
    })
    .await;
}

#[tokio::test]
async fn claims_past_their_lease_are_counted_for_operators() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (_, _, delivery) = app.one_delivered(&receiver).await;
    let (_, queue) = app.get("/api/admin/queue").await;
    assert_eq!(queue["expiredClaims"], 0);
    let metrics = app.api.metrics().await;
    assert!(metrics.contains("hookd_expired_claims 0"), "{metrics}");
    // With the server stopped nothing sweeps: the count is exact.
    app.stop().await;
    abandon_claim(&app.data_dir, &delivery);
    let out = run_cli(&app.data_dir, &["status", "--json"]).await;
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["expiredClaims"], 1);
    assert_eq!(status["webhooks"][0]["expiredClaims"], 1);
    let out = run_cli(&app.data_dir, &["status"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 claims past their lease"), "{text}");
}

#[tokio::test]
async fn a_test_delivery_whose_caller_gives_up_is_still_sent_and_recorded() {
    let app = spawn_app().await;
    let gate = Gate::new();
    let held = gate.clone();
    let receiver = Receiver::scripted(move |_, _| Reply::ok().held(&held)).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    let impatient = app
        .api
        .client
        .post(
            app.api
                .url(&format!("/api/surveys/{survey}/webhooks/{webhook}/test")),
        )
        .bearer_auth(KEY)
        .timeout(Duration::from_millis(300));
    let send = tokio::spawn(async move { impatient.send().await });
    wait_until("the test request is held", WAIT, || async {
        receiver.count() == 1
    })
    .await;
    assert!(send.await.unwrap().is_err(), "the caller gave up");
    gate.open();
    wait_until("the test delivery is recorded", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 1
    })
    .await;
    let (status, _) = app.get("/api/admin/queue").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_outcome_the_store_refuses_is_written_again_not_dropped() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    // A real SQLite failure, switched on and off by the test: every attempt record aborts
    // while the `fault` table has a row.
    let db = rusqlite::Connection::open(app.data_dir.join("hookd.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TABLE fault (on_ INTEGER); INSERT INTO fault VALUES (1);
         CREATE TRIGGER refuse_records BEFORE INSERT ON attempts
         WHEN EXISTS (SELECT 1 FROM fault) BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    app.complete_response(&survey, 5).await;
    wait_until("the attempt was made", WAIT, || async {
        receiver.count() == 1
    })
    .await;
    let (_, view) = app
        .get(&format!(
            "/api/surveys/{survey}/webhooks/{webhook}/deliveries"
        ))
        .await;
    assert_eq!(
        view["items"][0]["status"], "delivering",
        "its outcome is not written yet"
    );

    db.execute("DELETE FROM fault", []).unwrap();
    wait_until("the outcome is written", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 1
    })
    .await;
    assert_eq!(
        receiver.count(),
        1,
        "the kept outcome was written: no second attempt"
    );
    let delivery = &app.deliveries(&survey, &webhook).await[0];
    assert_eq!(delivery["attemptCount"], 1);
}
