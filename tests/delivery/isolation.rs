//! Webhooks do not hold each other up; deletion, per-host limits, in-flight bounds, SSRF at connect time.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::WAIT;
use crate::common::{Gate, Receiver, Reply, spawn_app, spawn_app_with, test_args, wait_until};

#[tokio::test]
async fn a_slow_webhook_does_not_delay_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.delivery_timeout_ms = Some(10_000);
    let app = spawn_app_with(args, Some(dir)).await;
    let slow = Receiver::scripted(|_, _| Reply::ok().after(Duration::from_secs(5))).await;
    let fast = Receiver::start().await;
    let survey = app.create_survey().await;
    let slow_hook = app
        .create_webhook(&survey, &slow.url("/slow"), json!({}))
        .await;
    app.create_webhook(&survey, &fast.url("/fast"), json!({}))
        .await;
    for stars in 1..=5 {
        app.complete_response(&survey, stars).await;
    }
    wait_until("the fast receiver got everything", WAIT, || async {
        fast.count() == 5
    })
    .await;
    let slow_deliveries = app.deliveries(&survey, &slow_hook).await;
    assert!(
        slow_deliveries.iter().all(|d| d["attemptCount"] == 0),
        "the fast webhook finished while the slow one's first attempts were still in flight"
    );
}

#[tokio::test]
async fn nothing_is_sent_to_a_webhook_after_it_is_deleted() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(500)).await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"retryPolicy": [1, 1, 1]}),
        )
        .await;
    app.complete_response(&survey, 1).await;
    wait_until("the first attempt failed", WAIT, || async {
        let delivery = &app.deliveries(&survey, &webhook).await[0];
        delivery["attemptCount"] == 1 && delivery["status"] == "pending"
    })
    .await;
    // Pending after a failure: the next attempt is scheduled and cannot start before it.
    let next = app.deliveries(&survey, &webhook).await[0]["nextAttemptAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .delete(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let sent = receiver.count();
    // Wait until the retry would have been due, and a little more.
    let due =
        time::OffsetDateTime::parse(&next, &time::format_description::well_known::Rfc3339).unwrap();
    wait_until("the retry time has passed", WAIT, || async {
        time::OffsetDateTime::now_utc() > due + Duration::from_millis(700)
    })
    .await;
    assert_eq!(receiver.count(), sent, "no request after the 204");
    let conn = rusqlite::Connection::open(app.data_dir.join("hookd.db")).unwrap();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "its deliveries and logs are removed");
}

#[tokio::test]
async fn the_per_host_limit_paces_every_webhook_on_that_host_without_failing_any_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.host_rate_limit = Some(5);
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let first = app
        .create_webhook(&survey, &receiver.url("/one"), json!({}))
        .await;
    let second = app
        .create_webhook(&survey, &receiver.url("/two"), json!({}))
        .await;
    for _ in 0..6 {
        app.complete_response(&survey, 5).await;
    }
    wait_until("twelve requests", WAIT, || async { receiver.count() == 12 }).await;
    let times: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    // 5 per second with a burst of 5: the last of 12 cannot come before 7 more slots (1.4 s).
    assert!(
        times[11] - times[0] >= Duration::from_millis(1200),
        "shared limit paced both webhooks"
    );
    for webhook in [first, second] {
        wait_until("all recorded", WAIT, || async {
            app.deliveries(&survey, &webhook)
                .await
                .iter()
                .all(|d| d["status"] == "succeeded" && d["attemptCount"] == 1)
        })
        .await;
    }
}

#[tokio::test]
async fn an_allowed_host_name_that_resolves_to_a_refused_address_is_blocked_at_connect_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.allow_networks = None;
    args.allow_hosts = Some("localhost".into());
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let webhook = app.create_webhook(&survey, &url, json!({})).await;
    let (status, detail) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "failed");
    assert!(
        detail["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no permitted address"),
        "{detail}"
    );
    assert_eq!(receiver.count(), 0, "nothing reached the loopback receiver");
    let (status, _) = app.post(&format!("/api/surveys/{survey}/webhooks"), json!({"name": "x", "url": receiver.url("/hook"), "events": ["survey.response_completed"]})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the IP literal itself is refused"
    );
}

#[tokio::test]
async fn a_webhook_never_has_more_attempts_in_flight_than_its_bound_nor_one_delivery_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.max_in_flight = Some(2);
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::scripted(|_, _| Reply::ok().after(Duration::from_millis(100))).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    for stars in 1..=5 {
        app.complete_response(&survey, stars).await;
        app.complete_response(&survey, stars).await;
    }
    wait_until("all ten delivered", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 10
    })
    .await;
    assert_eq!(
        receiver.max_concurrent(),
        2,
        "the bound is used and never passed"
    );
    assert!(
        receiver.per_delivery().values().all(|&n| n == 1),
        "no delivery sent twice"
    );
}

#[tokio::test]
async fn many_webhooks_on_one_host_share_its_in_flight_bound() {
    // 2 surveys x 10 webhooks x 16 in flight would be 320 requests at once to one host.
    // Every request is held until the host's bound is full, so the bound is reached however
    // slowly the scene is set up; then the rest must wait for a slot, not fail.
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.delivery_timeout_ms = Some(120_000);
    let app = spawn_app_with(args, Some(dir)).await;
    let gate = Gate::new();
    let held = gate.clone();
    let receiver = Receiver::scripted(move |_, _| Reply::ok().held(&held)).await;
    for s in 0..2 {
        let survey = app.create_survey().await;
        for w in 0..10 {
            let url = receiver.url(&format!("/hook/{s}/{w}"));
            app.create_webhook(&survey, &url, json!({})).await;
        }
        for stars in 1..=16 {
            app.complete_response(&survey, stars % 5 + 1).await;
        }
    }
    let bound = hookd::delivery::client::MAX_IN_FLIGHT_PER_HOST;
    wait_until("the host's bound is full", WAIT, || async {
        receiver.count() >= bound
    })
    .await;
    gate.open();
    wait_until("all 320 delivered", WAIT, || async {
        receiver.count() >= 320
    })
    .await;
    assert_eq!(
        receiver.max_concurrent(),
        bound,
        "the host's bound is reached and never passed"
    );
    assert!(
        receiver.per_delivery().values().all(|&n| n == 1),
        "waiting for a slot is not a failure: nothing was sent twice"
    );
}
