//! The delivery engine against a real receiver (SPEC §4): signatures, retries, Retry-After,
//! auto-disable, 410, redirects, truncation, isolation, test/retry/replay, deletion.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Receiver, Reply, TestApp, spawn_app, spawn_app_with, test_args, wait_until};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Checks both signature schemes of a request, written from the spec, not from hookd's code.
fn verify(request: &common::receiver::Recorded, secret: &str, all_secrets: &[&str]) {
    let body = &request.body;
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    );
    assert_eq!(request.header("x-webhook-signature").unwrap(), expected);
    let id = request.header("webhook-id").unwrap();
    assert_eq!(Some(&id), request.header("x-webhook-delivery").as_ref());
    let timestamp = request.header("webhook-timestamp").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 300);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let entries: Vec<String> = all_secrets
        .iter()
        .map(|s| {
            let key = match s.strip_prefix("whsec_") {
                Some(encoded) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap(),
                None => s.as_bytes().to_vec(),
            };
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed))
            )
        })
        .collect();
    assert_eq!(
        request.header("webhook-signature").unwrap(),
        entries.join(" ")
    );
}

async fn delivery_detail(app: &TestApp, survey: &str, webhook: &str, id: &str) -> Value {
    let (status, body) = app
        .get(&format!(
            "/api/surveys/{survey}/webhooks/{webhook}/deliveries/{id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn webhook_view(app: &TestApp, survey: &str, webhook: &str) -> Value {
    app.get(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
        .await
        .1
}

#[tokio::test]
async fn requests_carry_both_signatures_the_headers_and_the_exact_stored_body() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let plain = "plain secret, with spaces — and ünïcode";
    let a = app
        .create_webhook(
            &survey,
            &receiver.url("/a"),
            json!({"secret": whsec, "headers": {"X-Clinic": "north"}}),
        )
        .await;
    let b = app
        .create_webhook(&survey, &receiver.url("/b"), json!({"secret": plain}))
        .await;
    let c = app
        .create_webhook(&survey, &receiver.url("/c"), json!({}))
        .await;
    app.complete_response(&survey, 4).await;
    wait_until("three requests", WAIT, || async { receiver.count() == 3 }).await;
    for request in receiver.requests() {
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(request.header("user-agent").unwrap().starts_with("hookd/"));
        assert_eq!(
            request.header("x-webhook-event").as_deref(),
            Some("survey.response_completed")
        );
        let (webhook, secret) = match request.path.as_str() {
            "/a" => (&a, Some(whsec)),
            "/b" => (&b, Some(plain)),
            _ => (&c, None),
        };
        let id = request.header("x-webhook-delivery").unwrap();
        let detail = delivery_detail(&app, &survey, webhook, &id).await;
        let stored: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            detail["payload"], stored,
            "the body sent is the stored payload"
        );
        match secret {
            Some(secret) => verify(&request, secret, &[secret]),
            None => assert!(
                request.header("x-webhook-signature").is_none()
                    && request.header("webhook-signature").is_none()
            ),
        }
        if request.path == "/a" {
            assert_eq!(request.header("x-clinic").as_deref(), Some("north"));
        }
    }
}

#[tokio::test]
async fn a_changed_secret_keeps_signing_beside_the_new_one() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let old = "old-secret-0123456789";
    let new = "whsec_bmV3LXNlY3JldC0wMTIzNDU2Nzg5";
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({"secret": old}))
        .await;
    app.patch(
        &format!("/api/surveys/{survey}/webhooks/{webhook}"),
        json!({"secret": new}),
    )
    .await;
    app.complete_response(&survey, 5).await;
    wait_until("the request", WAIT, || async { receiver.count() == 1 }).await;
    verify(&receiver.requests()[0], new, &[new, old]);
}

#[tokio::test]
async fn failures_are_retried_on_schedule_and_every_attempt_is_recorded() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, n| {
        if n < 2 {
            Reply::status(500).body("down for maintenance")
        } else {
            Reply::ok().body("thanks")
        }
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"retryPolicy": [1, 2]}),
        )
        .await;
    app.complete_response(&survey, 2).await;
    wait_until("three attempts", WAIT, || async { receiver.count() == 3 }).await;
    let times: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    assert!(
        times[1] - times[0] >= Duration::from_millis(900),
        "first retry after ~1 s (-10%)"
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(1800),
        "second retry after ~2 s (-10%)"
    );
    let id = receiver.requests()[0].header("x-webhook-delivery").unwrap();
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.header("x-webhook-delivery").as_deref() == Some(&id))
    );
    wait_until("the success is recorded", WAIT, || async {
        delivery_detail(&app, &survey, &webhook, &id).await["status"] == "succeeded"
    })
    .await;
    let detail = delivery_detail(&app, &survey, &webhook, &id).await;
    assert_eq!(detail["attemptCount"], 3);
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["statusCode"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(attempts[0]["responseBody"], "down for maintenance");
    assert_eq!(attempts[2]["responseBody"], "thanks");
    assert_eq!(attempts[0]["attempt"], 1);
    assert!(detail["completedAt"].is_string());
    assert_eq!(
        webhook_view(&app, &survey, &webhook).await["consecutiveFailures"],
        0,
        "a brief outage disables nothing"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_waits_at_least_that_long() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, n| {
        if n == 0 {
            Reply::status(429).header("Retry-After", "3")
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    app.create_webhook(&survey, &receiver.url("/hook"), json!({"retryPolicy": [1]}))
        .await;
    app.complete_response(&survey, 2).await;
    wait_until("the retry", WAIT, || async { receiver.count() == 2 }).await;
    let times: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    assert!(
        times[1] - times[0] >= Duration::from_millis(2900),
        "Retry-After 3 s beats the policy's 1 s"
    );
}

#[tokio::test]
async fn exhausted_deliveries_fail_and_enough_of_them_disable_the_webhook_until_re_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.auto_disable_after = Some(2);
    let app = spawn_app_with(args, Some(dir)).await;
    let receiver = Receiver::scripted(|_, _| Reply::status(500)).await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({"retryPolicy": []}))
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
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
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

#[tokio::test]
async fn redirects_are_not_followed_and_count_as_failures() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|request, _| {
        if request.path == "/hook" {
            Reply::status(301).header("Location", "/moved")
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({"retryPolicy": []}))
        .await;
    app.complete_response(&survey, 3).await;
    wait_until("the delivery failed", WAIT, || async {
        app.deliveries(&survey, &webhook).await[0]["status"] == "failed"
    })
    .await;
    assert_eq!(
        receiver
            .requests()
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["/hook"]
    );
    assert_eq!(
        app.deliveries(&survey, &webhook).await[0]["lastStatusCode"],
        301
    );
}

#[tokio::test]
async fn long_response_bodies_are_kept_to_4096_bytes() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::ok().body("x".repeat(10 * 1024))).await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
    let (status, detail) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let attempt = &detail["attempts"][0];
    assert_eq!(attempt["responseBody"].as_str().unwrap().len(), 4096);
    assert_eq!(attempt["responseTruncated"], true);
}

#[tokio::test]
async fn the_test_route_sends_once_records_and_never_retries() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, n| {
        if n == 0 {
            Reply::ok()
        } else {
            Reply::status(503)
        }
    })
    .await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"isActive": false, "secret": "0123456789abcdef0123"}),
        )
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}/test");
    let (status, detail) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (detail["eventType"].as_str(), detail["status"].as_str()),
        (Some("webhook.test"), Some("succeeded"))
    );
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(detail["payload"]["data"]["webhookId"], json!(webhook));
    verify(
        &receiver.requests()[0],
        "0123456789abcdef0123",
        &["0123456789abcdef0123"],
    );
    let (_, failed) = app.post(&path, json!({})).await;
    assert_eq!(
        (failed["status"].as_str(), failed["nextAttemptAt"].clone()),
        (Some("failed"), Value::Null)
    );
    assert_eq!(failed["attempts"][0]["statusCode"], 503);
    let (_, listed) = app.get(&format!("/api/surveys/{survey}/webhooks/{webhook}/deliveries?eventType=webhook.test&status=failed")).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retry_resends_the_same_delivery_with_the_same_bytes() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
    app.complete_response(&survey, 5).await;
    wait_until("delivered", WAIT, || async {
        app.deliveries(&survey, &webhook).await[0]["status"] == "succeeded"
    })
    .await;
    let id = receiver.requests()[0].header("x-webhook-delivery").unwrap();
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}/deliveries/{id}/retry");
    let (status, retried) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["id"], json!(id));
    wait_until("sent again", WAIT, || async { receiver.count() == 2 }).await;
    let requests = receiver.requests();
    assert_eq!(requests[0].body, requests[1].body, "byte-identical body");
    assert_eq!(requests[1].header("x-webhook-delivery"), Some(id.clone()));
    wait_until("recorded", WAIT, || async {
        delivery_detail(&app, &survey, &webhook, &id).await["attemptCount"] == 2
    })
    .await;

    receiver.set_script(|_, _| Reply::status(500).after(Duration::from_millis(300)));
    app.post(&path, json!({})).await;
    let (status, busy) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(busy["error"]["code"], "delivery_in_progress");
}

#[tokio::test]
async fn deliveries_are_listed_newest_first_with_filters_and_a_cursor() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
    for stars in 1..=5 {
        app.complete_response(&survey, stars).await;
    }
    wait_until("five delivered", WAIT, || async {
        app.count_with_status(&survey, &webhook, "succeeded").await == 5
    })
    .await;
    let all = app.deliveries(&survey, &webhook).await;
    let ids: Vec<_> = all
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "newest first");
    let base = format!("/api/surveys/{survey}/webhooks/{webhook}/deliveries");
    let (_, page) = app.get(&format!("{base}?limit=2")).await;
    let (_, next) = app
        .get(&format!(
            "{base}?limit=2&cursor={}",
            page["nextCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(next["items"][0]["id"], json!(ids[2]));
    let (_, none) = app.get(&format!("{base}?status=failed")).await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    let (_, completed) = app
        .get(&format!(
            "{base}?eventType=survey.response_completed&status=succeeded"
        ))
        .await;
    assert_eq!(completed["items"].as_array().unwrap().len(), 5);
    for bad in ["status=lost", "eventType=survey.deleted"] {
        assert_eq!(
            app.get(&format!("{base}?{bad}")).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}

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
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
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
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::ok().after(Duration::from_millis(1500))).await;
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
    wait_until("all 320 delivered", Duration::from_secs(30), || async {
        receiver.count() >= 320
    })
    .await;
    assert_eq!(
        receiver.max_concurrent(),
        hookd::delivery::client::MAX_IN_FLIGHT_PER_HOST,
        "the host's bound is reached and never passed"
    );
    assert!(
        receiver.per_delivery().values().all(|&n| n == 1),
        "waiting for a slot is not a failure: nothing was sent twice"
    );
}

#[tokio::test]
async fn an_attempt_that_outlasts_the_timeout_fails_as_timed_out() {
    let app = spawn_app().await; // delivery timeout 2 s
    let receiver = Receiver::scripted(|_, _| Reply::ok().after(Duration::from_secs(4))).await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
    let (status, detail) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "failed");
    let attempt = &detail["attempts"][0];
    assert!(
        attempt["error"].as_str().unwrap().contains("timed out"),
        "{attempt}"
    );
    assert_eq!(attempt["statusCode"], Value::Null);
    assert!(
        attempt["durationMs"].as_u64().unwrap() < 4000,
        "cut off before the receiver answered"
    );
}
