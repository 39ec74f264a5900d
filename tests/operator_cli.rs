//! The operators' command line, run as the real binary against a data directory: with the
//! server stopped (changes apply at its next start) and beside a running server (changes
//! take effect at once). Backups have their own file (`backup.rs`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Receiver, Reply, TestApp, spawn_app, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// The command's standard output; the command must have succeeded.
async fn hookd_ok(data_dir: &Path, args: &[&str]) -> String {
    let output = common::run_cli(data_dir, args).await;
    assert!(
        output.status.success(),
        "hookd {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn hookd_json(data_dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&hookd_ok(data_dir, args).await).unwrap()
}

/// The command's standard error; the command must have failed.
async fn hookd_err(data_dir: &Path, args: &[&str]) -> String {
    let output = common::run_cli(data_dir, args).await;
    assert!(!output.status.success(), "hookd {args:?} succeeded");
    String::from_utf8(output.stderr).unwrap()
}

/// A webhook that is never retried (`retryPolicy: []`) whose one delivery failed against
/// a receiver answering 500. Returns (survey, webhook, delivery).
async fn failed_delivery(app: &TestApp, receiver: &Receiver) -> (String, String, String) {
    let (survey, webhook) = app
        .survey_with_webhook(receiver, json!({"retryPolicy": []}))
        .await;
    app.complete_response(&survey, 2).await;
    let delivery = wait_for_status(app, &survey, &webhook, "failed").await;
    (survey, webhook, delivery)
}

/// Waits until the webhook's newest delivery has `status`; returns its id.
async fn wait_for_status(app: &TestApp, survey: &str, webhook: &str, status: &str) -> String {
    wait_until(&format!("a delivery is {status}"), WAIT, || async {
        app.deliveries(survey, webhook)
            .await
            .first()
            .is_some_and(|d| d["status"] == status)
    })
    .await;
    app.deliveries(survey, webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn restart(app: TestApp) -> TestApp {
    app.restart().await
}

fn failing_receiver() -> impl Fn(&common::receiver::Recorded, usize) -> Reply + Send + Sync + 'static
{
    |_, _| Reply::status(500).body("receiver says no")
}

#[tokio::test]
async fn status_works_with_the_server_stopped_and_lists_disabled_webhooks_first() {
    let mut app = spawn_app().await;
    let receiver = Receiver::scripted(|r, _| {
        if r.path == "/gone" {
            Reply::status(410)
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    let healthy = app
        .create_webhook(&survey, &receiver.url("/ok"), json!({"name": "Archive"}))
        .await;
    let gone = app
        .create_webhook(&survey, &receiver.url("/gone"), json!({"name": "Old HIS"}))
        .await;
    app.complete_response(&survey, 4).await;
    wait_for_status(&app, &survey, &healthy, "succeeded").await;
    wait_until("the 410 disabled the webhook", WAIT, || async {
        let (_, hook) = app
            .get(&format!("/api/surveys/{survey}/webhooks/{gone}"))
            .await;
        hook["isActive"] == false
    })
    .await;
    app.stop().await;

    let text = hookd_ok(&app.data_dir, &["status"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("STATE") && lines[0].contains("NEXT ATTEMPT"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("disabled") && lines[1].contains(&gone),
        "{text}"
    );
    assert!(lines[1].contains("paused"), "{text}");
    assert!(
        lines[2].starts_with("active") && lines[2].contains(&healthy),
        "{text}"
    );
    assert!(text.contains("410 Gone"), "{text}");

    let status = hookd_json(&app.data_dir, &["status", "--json"]).await;
    let hooks = status["webhooks"].as_array().unwrap();
    assert_eq!(hooks[0]["webhookId"], json!(gone));
    assert_eq!(hooks[0]["state"], "disabled");
    assert_eq!(
        hooks[0]["counts"],
        json!({"pending": 1, "delivering": 0, "succeeded": 0, "failed": 0})
    );
    assert!(hooks[0]["oldestPendingAt"].is_string());
    assert!(hooks[0]["nextAttemptAt"].is_string());
    assert_eq!(hooks[1]["state"], "active");
    assert_eq!(hooks[1]["counts"]["succeeded"], 1);
    assert_eq!(status["disabledWebhooks"], 1);

    // The admin API serves the same summary.
    let app = restart(app).await;
    let (code, api) = app.get("/api/admin/queue").await;
    assert_eq!(code, 200, "{api}");
    let strip = |mut v: Value| {
        for hook in v["webhooks"].as_array_mut().unwrap() {
            hook.as_object_mut()
                .unwrap()
                .remove("oldestPendingAgeSeconds");
        }
        v["webhooks"].clone()
    };
    assert_eq!(strip(api), strip(status));
}

#[tokio::test]
async fn a_retry_with_the_server_stopped_is_sent_at_its_next_start_and_audited() {
    let mut app = spawn_app().await;
    let receiver = Receiver::scripted(failing_receiver()).await;
    let (survey, webhook, delivery) = failed_delivery(&app, &receiver).await;
    app.stop().await;

    let out = hookd_ok(&app.data_dir, &["deliveries", "retry", &delivery]).await;
    assert!(out.contains(&delivery), "{out}");
    let shown = hookd_json(&app.data_dir, &["deliveries", "show", &delivery, "--json"]).await;
    assert_eq!(shown["status"], "pending");
    assert_eq!(receiver.count(), 1);

    receiver.set_script(|_, _| Reply::ok());
    let app = restart(app).await;
    wait_for_status(&app, &survey, &webhook, "succeeded").await;
    assert_eq!(receiver.count(), 2);
    let (_, audit) = app.get("/api/admin/audit").await;
    let entry = &audit["items"][0];
    assert_eq!(entry["keyId"], "cli");
    assert_eq!(entry["action"], "delivery.retried");
    assert_eq!(entry["targetId"], json!(delivery));
}

#[tokio::test]
async fn a_retry_from_the_command_line_reaches_a_running_server_at_once() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(failing_receiver()).await;
    let (survey, webhook, delivery) = failed_delivery(&app, &receiver).await;
    receiver.set_script(|_, _| Reply::ok());

    hookd_ok(&app.data_dir, &["deliveries", "retry", &delivery]).await;
    wait_until("the receiver got the retry", WAIT, || async {
        receiver.count() == 2
    })
    .await;
    wait_for_status(&app, &survey, &webhook, "succeeded").await;
    let requests = receiver.requests();
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(
        requests[1].header("x-webhook-delivery").as_deref(),
        Some(delivery.as_str())
    );
}

/// A webhook disabled by a 410 with one paused delivery; the receiver heals afterwards.
async fn disabled_webhook(app: &TestApp, receiver: &Receiver) -> (String, String) {
    let (survey, webhook) = app.survey_with_webhook(receiver, json!({})).await;
    app.complete_response(&survey, 3).await;
    wait_until("the 410 disabled the webhook", WAIT, || async {
        let (_, hook) = app
            .get(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
            .await;
        hook["isActive"] == false
    })
    .await;
    receiver.set_script(|_, _| Reply::ok());
    (survey, webhook)
}

#[tokio::test]
async fn enabling_a_webhook_beside_a_running_server_resumes_its_paused_deliveries() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(410)).await;
    let (survey, webhook) = disabled_webhook(&app, &receiver).await;

    let out = hookd_ok(&app.data_dir, &["webhooks", "enable", &webhook]).await;
    assert!(out.contains("active again"), "{out}");
    wait_for_status(&app, &survey, &webhook, "succeeded").await;
    let hooks = hookd_json(&app.data_dir, &["webhooks", "list", "--json"]).await;
    assert_eq!(hooks["items"][0]["isActive"], true);
    assert_eq!(hooks["items"][0]["disabledReason"], Value::Null);
    let again = hookd_ok(&app.data_dir, &["webhooks", "enable", &webhook]).await;
    assert!(again.contains("already active"), "{again}");
}

#[tokio::test]
async fn enabling_a_webhook_with_the_server_stopped_applies_at_its_next_start() {
    let mut app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(410)).await;
    let (survey, webhook) = disabled_webhook(&app, &receiver).await;
    app.stop().await;

    let before = hookd_ok(&app.data_dir, &["webhooks", "list"]).await;
    assert!(
        before.lines().nth(1).unwrap().contains("disabled"),
        "{before}"
    );
    hookd_ok(&app.data_dir, &["webhooks", "enable", &webhook]).await;
    let after = hookd_ok(&app.data_dir, &["webhooks", "list"]).await;
    assert!(after.lines().nth(1).unwrap().contains("active"), "{after}");
    assert_eq!(receiver.count(), 1);

    let app = restart(app).await;
    wait_for_status(&app, &survey, &webhook, "succeeded").await;
    let (_, audit) = app.get("/api/admin/audit?limit=1").await;
    assert_eq!(audit["items"][0]["action"], "webhook.enabled");
    assert_eq!(audit["items"][0]["keyId"], "cli");
    assert!(audit["nextCursor"].is_string());
}

#[tokio::test]
async fn deliveries_can_be_listed_by_status_webhook_and_limit_and_shown_with_their_answers() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|r, _| {
        if r.path == "/bad" {
            Reply::status(500).body("receiver says no")
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    let bad = app
        .create_webhook(&survey, &receiver.url("/bad"), json!({"retryPolicy": []}))
        .await;
    let good = app
        .create_webhook(&survey, &receiver.url("/good"), json!({}))
        .await;
    for stars in [1, 5] {
        app.complete_response(&survey, stars).await;
    }
    wait_until("four deliveries finished", WAIT, || async {
        finished(&app, &survey, &bad).await + finished(&app, &survey, &good).await == 4
    })
    .await;
    let dir = &app.data_dir;

    let failed = hookd_json(dir, &["deliveries", "list", "--status", "failed", "--json"]).await;
    let failed = failed["items"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|d| d["webhookId"] == json!(bad)));
    let good_ones = hookd_json(dir, &["deliveries", "list", "--webhook", &good, "--json"]).await;
    assert_eq!(good_ones["items"].as_array().unwrap().len(), 2);
    assert!(
        good_ones["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "succeeded")
    );
    let one = hookd_json(dir, &["deliveries", "list", "--limit", "1", "--json"]).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let table = hookd_ok(dir, &["deliveries", "list"]).await;
    assert!(table.starts_with("DELIVERY"), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");

    let id = failed[0]["id"].as_str().unwrap();
    let text = hookd_ok(dir, &["deliveries", "show", id]).await;
    assert!(text.contains("status        failed"), "{text}");
    assert!(
        text.contains("attempt 1") && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(text.contains("receiver says no"), "{text}");
    assert!(
        !text.contains("stars"),
        "the body is shown only when asked: {text}"
    );
    let detail = hookd_json(dir, &["deliveries", "show", id, "--json"]).await;
    assert_eq!(detail["attempts"][0]["responseBody"], "receiver says no");
    assert_eq!(detail["payload"], Value::Null);
    let with_body = hookd_json(dir, &["deliveries", "show", id, "--json", "--payload"]).await;
    assert_eq!(
        with_body["payload"]["eventType"],
        "survey.response_completed"
    );
}

async fn finished(app: &TestApp, survey: &str, webhook: &str) -> usize {
    app.deliveries(survey, webhook)
        .await
        .iter()
        .filter(|d| d["status"] == "failed" || d["status"] == "succeeded")
        .count()
}

#[tokio::test]
async fn unknown_or_malformed_ids_fail_with_a_clear_message() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(410)).await;
    let (survey, webhook) = disabled_webhook(&app, &receiver).await;
    let paused = app.deliveries(&survey, &webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = &app.data_dir;
    let unknown = "0190a000-0000-7000-8000-000000000000";

    let error = hookd_err(dir, &["deliveries", "show", unknown]).await;
    assert!(error.contains(&format!("no delivery {unknown}")), "{error}");
    let error = hookd_err(dir, &["deliveries", "retry", unknown]).await;
    assert!(error.contains(&format!("no delivery {unknown}")), "{error}");
    let error = hookd_err(dir, &["deliveries", "retry", "nonsense"]).await;
    assert!(error.contains("`nonsense` is not a delivery id"), "{error}");
    let error = hookd_err(dir, &["webhooks", "enable", unknown]).await;
    assert!(error.contains(&format!("no webhook {unknown}")), "{error}");
    let error = hookd_err(dir, &["deliveries", "list", "--webhook", "x"]).await;
    assert!(error.contains("`x` is not a webhook id"), "{error}");
    let error = hookd_err(dir, &["deliveries", "retry", &paused]).await;
    assert!(
        error.contains("cannot retry") && error.contains("pending"),
        "{error}"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    for command in [
        &["status"][..],
        &["keys", "list"],
        &["keys", "create", "--name", "x"],
    ] {
        let error = hookd_err(elsewhere.path(), command).await;
        assert!(error.contains("no hookd database"), "{command:?}: {error}");
        assert!(!elsewhere.path().join("hookd.db").exists(), "{command:?}");
    }
}
