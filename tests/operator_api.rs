//! The operators' HTTP side: the admin routes behind the key, `/metrics` and the page at `/`.

mod common;

use std::time::Duration;

use common::{Receiver, Reply, TestApp, spawn_app, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// Three webhooks on one survey, one response: `/ok` succeeds, `/bad` fails for good (500,
/// no retries), `/gone` answers 410 and is disabled. Returns (survey, [ok, bad, gone]).
async fn three_outcomes(app: &TestApp) -> (String, [String; 3], Receiver) {
    let receiver = Receiver::scripted(|r, _| match r.path.as_str() {
        "/bad" => Reply::status(500).body("no"),
        "/gone" => Reply::status(410),
        _ => Reply::ok(),
    })
    .await;
    let survey = app.create_survey().await;
    let ok = app
        .create_webhook(&survey, &receiver.url("/ok"), json!({"name": "ok"}))
        .await;
    let bad = app
        .create_webhook(
            &survey,
            &receiver.url("/bad"),
            json!({"name": "bad", "retryPolicy": []}),
        )
        .await;
    let gone = app
        .create_webhook(&survey, &receiver.url("/gone"), json!({"name": "gone"}))
        .await;
    app.complete_response(&survey, 5).await;
    wait_until("every webhook had its attempt", WAIT, || async {
        let (_, queue) = app.get("/api/admin/queue").await;
        queue["totals"] == json!({"pending": 1, "delivering": 0, "succeeded": 1, "failed": 1})
            && queue["disabledWebhooks"] == 1
    })
    .await;
    (survey, [ok, bad, gone], receiver)
}

#[tokio::test]
async fn the_admin_routes_need_the_key_and_are_documented() {
    let app = spawn_app().await;
    for path in [
        "/api/admin/queue",
        "/api/admin/audit",
        "/api/admin/throughput",
        "/api/admin/deliveries",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (_, doc) = app.get("/api/openapi.json").await;
    for path in [
        "/api/admin/queue",
        "/api/admin/audit",
        "/api/admin/throughput",
        "/api/admin/deliveries",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test]
async fn the_queue_lists_disabled_webhooks_first_with_counts_and_ages() {
    let app = spawn_app().await;
    let (survey, [ok, bad, gone], _receiver) = three_outcomes(&app).await;
    let (code, queue) = app.get("/api/admin/queue").await;
    assert_eq!(code, 200);
    let hooks = queue["webhooks"].as_array().unwrap();
    let order: Vec<&Value> = hooks.iter().map(|h| &h["webhookId"]).collect();
    assert_eq!(order[0], &json!(gone));
    assert_eq!(hooks[0]["state"], "disabled");
    assert_eq!(hooks[0]["disabledReason"], "receiver answered 410 Gone");
    assert_eq!(hooks[0]["ordering"], "concurrent");
    assert_eq!(
        hooks[0]["failuresWhenDisabled"], 0,
        "the streak when hookd disabled it"
    );
    assert_eq!(hooks[0]["surveyId"], json!(survey));
    assert!(hooks[0]["oldestPendingAgeSeconds"].is_u64());
    assert!(hooks[0]["nextAttemptAt"].is_string());
    let bad_row = hooks.iter().find(|h| h["webhookId"] == json!(bad)).unwrap();
    assert_eq!(bad_row["counts"]["failed"], 1);
    assert_eq!(bad_row["consecutiveFailures"], 1);
    let ok_row = hooks.iter().find(|h| h["webhookId"] == json!(ok)).unwrap();
    assert_eq!(ok_row["state"], "active");
    assert_eq!(ok_row["oldestPendingAt"], Value::Null);
    assert_eq!(ok_row["failuresWhenDisabled"], Value::Null);
    assert_eq!(ok_row["expiredClaims"], 0);
    assert!(queue["oldestPendingAgeSeconds"].is_u64());
    // The writer's last minute: the commits that stored all this.
    let writer = &queue["writer"];
    let batches = writer["batches"].as_u64().unwrap();
    assert!(batches > 0, "{writer}");
    assert!(writer["jobs"].as_u64().unwrap() >= batches, "{writer}");
    assert!(writer["jobsPerBatch"].as_f64().unwrap() >= 1.0, "{writer}");
    assert!(writer["commitMs"].as_f64().unwrap() > 0.0, "{writer}");
    assert!(
        writer["durableCommitMs"].as_f64().unwrap() > 0.0,
        "{writer}"
    );
    assert!(writer["mostWaiting"].as_u64().unwrap() >= 1, "{writer}");
}

#[tokio::test]
async fn the_throughput_series_counts_the_last_hour_by_outcome() {
    let app = spawn_app().await;
    three_outcomes(&app).await;
    let (code, series) = app.get("/api/admin/throughput").await;
    assert_eq!(code, 200, "{series}");
    let minutes = series["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let sum = |key: &str| {
        minutes
            .iter()
            .map(|m| m[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("succeeded"), sum("retry"), sum("failed")), (1, 1, 1));
    assert!(minutes[0]["minute"].as_str().unwrap() < minutes[59]["minute"].as_str().unwrap());
}

#[tokio::test]
async fn recent_deliveries_across_webhooks_come_with_their_attempts_and_filters() {
    let app = spawn_app().await;
    let (_, [ok, bad, _], _receiver) = three_outcomes(&app).await;
    let (code, failed) = app.get("/api/admin/deliveries?status=failed").await;
    assert_eq!(code, 200, "{failed}");
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["webhookId"], json!(bad));
    assert_eq!(items[0]["attempts"][0]["statusCode"], 500);
    assert_eq!(items[0]["attempts"][0]["responseBody"], "no");

    let (_, of_ok) = app
        .get(&format!("/api/admin/deliveries?webhookId={ok}"))
        .await;
    assert_eq!(of_ok["items"][0]["status"], "succeeded");
    assert_eq!(of_ok["items"].as_array().unwrap().len(), 1);

    let (_, first) = app.get("/api/admin/deliveries?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/api/admin/deliveries?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["nextCursor"], Value::Null);

    for query in [
        "status=lost",
        "webhookId=nope",
        "limit=0",
        "limit=201",
        "cursor=x",
    ] {
        let (code, body) = app.get(&format!("/api/admin/deliveries?{query}")).await;
        assert_eq!(code, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }
}

#[tokio::test]
async fn the_audit_log_says_which_key_did_what_newest_first_page_by_page() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::status(500)).await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/h"), json!({"retryPolicy": []}))
        .await;
    app.complete_response(&survey, 1).await;
    wait_until("the delivery failed", WAIT, || async {
        app.deliveries(&survey, &webhook)
            .await
            .first()
            .is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let delivery = app.deliveries(&survey, &webhook).await[0]["id"].clone();
    let (code, _) = app
        .post(
            &format!(
                "/api/surveys/{survey}/webhooks/{webhook}/deliveries/{}/retry",
                delivery.as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(code, 202);

    let (code, page) = app.get("/api/admin/audit?limit=1").await;
    assert_eq!(code, 200, "{page}");
    let newest = &page["items"][0];
    assert_eq!(newest["action"], "delivery.retried");
    assert_eq!(newest["keyId"], "env");
    assert_eq!(newest["targetType"], "delivery");
    assert_eq!(newest["targetId"], delivery);
    assert!(newest["at"].as_str().unwrap().ends_with('Z'));
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, older) = app
        .get(&format!("/api/admin/audit?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(older["items"][0]["action"], "webhook.created");
    assert_eq!(older["items"][0]["targetId"], json!(webhook));

    let (_, all) = app.get("/api/admin/audit").await;
    let text = all.to_string();
    assert!(!text.contains("\"stars\""), "no answers in the audit log");
    for query in ["limit=0", "cursor=abc"] {
        let (code, _) = app.get(&format!("/api/admin/audit?{query}")).await;
        assert_eq!(code, 422, "{query}");
    }
}

#[tokio::test]
async fn metrics_are_public_prometheus_text_with_outcomes_latency_and_queue_gauges() {
    let app = spawn_app().await;
    three_outcomes(&app).await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    let text = response.text().await.unwrap();
    for line in [
        "hookd_attempts_total{outcome=\"succeeded\"} 1",
        "hookd_attempts_total{outcome=\"failed\"} 1",
        "hookd_attempts_total{outcome=\"disabled\"} 1",
        "hookd_deliveries_total{outcome=\"succeeded\"} 1",
        "hookd_deliveries_total{outcome=\"failed\"} 1",
        "hookd_attempt_duration_seconds_count 3",
        "hookd_queue_depth{status=\"pending\"} 1",
        "hookd_queue_depth{status=\"delivering\"} 0",
        "hookd_queue_depth{status=\"succeeded\"} 1",
        "hookd_queue_depth{status=\"failed\"} 1",
        "hookd_disabled_webhooks 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
        assert!(
            !text.contains("hookd_deliveries_total{outcome=\"disabled\"}"),
            "a delivery paused by a 410 has not finished"
        );
    }
    for name in [
        "hookd_attempt_duration_seconds_bucket{le=\"0.005\"}",
        "hookd_oldest_pending_age_seconds ",
        "hookd_delivery_actors ",
        "# TYPE hookd_attempt_duration_seconds histogram",
        // The store's writer: every group commit, durable (acknowledgements) and relaxed
        // (the engine's claims and outcomes), with its size and the jobs waiting.
        "# TYPE hookd_writer_commit_seconds histogram",
        "hookd_writer_commit_seconds_count{durability=\"durable\"} ",
        "hookd_writer_commit_seconds_count{durability=\"relaxed\"} ",
        "hookd_writer_commit_seconds_bucket{durability=\"durable\",le=\"0.00005\"}",
        "hookd_writer_batch_jobs_bucket{le=\"512\"}",
        "hookd_writer_waiting_jobs_bucket{le=\"8192\"}",
        "hookd_writer_work_seconds_count ",
    ] {
        assert!(text.contains(name), "missing `{name}` in\n{text}");
    }
    assert!(!text.contains("survey_id") && !text.contains("webhook_id"));
}

#[tokio::test]
async fn the_attempt_histogram_keeps_the_measured_time_not_whole_milliseconds() {
    let app = spawn_app().await;
    three_outcomes(&app).await;
    let text = app.metrics().await;
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hookd_attempt_duration_seconds_sum "))
        .unwrap_or_else(|| panic!("no attempt duration sum in\n{text}"))
        .parse()
        .unwrap();
    // Attempts to a receiver on loopback take a fraction of a millisecond each: counted in
    // whole milliseconds they summed to 0 (or to whole milliseconds on a slow moment).
    let ms = sum * 1000.0;
    assert!(
        sum > 0.0 && (ms - ms.round()).abs() > 1e-6,
        "three attempts summed to {sum} s"
    );
}

#[tokio::test]
async fn the_operator_page_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"key-input\"") && html.contains("sessionStorage"));
    assert!(!html.contains(common::KEY));
}

#[tokio::test]
async fn with_a_metrics_key_set_only_it_reads_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let args = hookd::config::ServeArgs {
        metrics_key: Some("scraper-key-0123456789".into()),
        ..common::test_args(dir.path())
    };
    let app = common::spawn_app_with(args, Some(dir)).await;
    let scrape = |key: Option<&'static str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move { request.send().await.unwrap() }
    };
    let refused = scrape(None).await;
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    // Not the admin key either: the scraper's key is its own.
    assert_eq!(scrape(Some(common::KEY)).await.status(), 401);
    let served = scrape(Some("scraper-key-0123456789")).await;
    assert_eq!(served.status(), 200);
    assert!(served.text().await.unwrap().contains("hookd_queue_depth"));
}
