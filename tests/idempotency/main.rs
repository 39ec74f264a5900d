//! Idempotent requests (SPEC §8): a `POST` with an `Idempotency-Key` is answered once and
//! its repeats get that answer again, change nothing, and survive a restart.

#[path = "../common/mod.rs"]
mod common;

mod coverage;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Gate, KEY, Receiver, Reply, TestApp, spawn_app, spawn_app_with, test_args, wait_until,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// One answer as the client saw it.
struct Answered {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answered {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }
}

/// `POST path` with `body`, the API key `bearer` (none for `/r/`) and an optional key.
async fn post(
    app: &TestApp,
    bearer: Option<&str>,
    key: Option<&str>,
    path: &str,
    body: &Value,
) -> Answered {
    let mut request = app.client.post(app.url(path)).json(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    Answered {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn kiosk(survey: &str) -> String {
    format!("/api/surveys/{survey}/responses")
}

fn stars(n: u8) -> Value {
    json!({"answers": {"stars": {"value": n}}})
}

#[tokio::test]
async fn a_repeated_kiosk_response_gets_the_first_answer_and_is_stored_and_delivered_once() {
    let receiver = Receiver::start().await;
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/his"), json!({}))
        .await;

    let first = post(
        &app,
        Some(KEY),
        Some("kiosk-7:0001"),
        &kiosk(&survey),
        &stars(4),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(!first.replayed());
    let again = post(
        &app,
        Some(KEY),
        Some("kiosk-7:0001"),
        &kiosk(&survey),
        &stars(4),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(again.replayed(), "the repeat says it is a replay");
    assert_eq!(
        again.body, first.body,
        "the same bytes, the same response id"
    );
    assert_eq!(again.header("content-type"), Some("application/json"));

    wait_until(
        "the event is delivered",
        Duration::from_secs(10),
        || async { receiver.count() >= 1 },
    )
    .await;
    assert_eq!(app.rows("responses"), 1);
    assert_eq!(app.rows("events"), 1);
    assert_eq!(app.deliveries(&survey, &webhook).await.len(), 1);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn a_repeated_webhook_creation_answers_its_location_again_and_creates_one_webhook() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let path = format!("/api/surveys/{survey}/webhooks");
    let body = json!({"name": "HIS", "url": "http://127.0.0.1:9/hook", "events": ["survey.response_completed"]});

    let first = post(&app, Some(KEY), Some("create-his"), &path, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = post(&app, Some(KEY), Some("create-his"), &path, &body).await;
    assert!(again.replayed());
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert!(first.header("location").is_some());
    assert_eq!(again.header("location"), first.header("location"));
    let (_, list) = app.get(&path).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_key_for_another_request_is_refused_and_each_api_key_has_its_own_keys() {
    let app = spawn_app().await;
    let created = common::run_cli(&app.data_dir, &["keys", "create", "--name", "tablet"]).await;
    assert!(created.status.success());
    let tablet = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    // The server picks up keys made on the command line within a quarter of a second.
    wait_until("the tablet's key works", Duration::from_secs(5), || {
        let request = app.client.get(app.url("/api/surveys")).bearer_auth(&tablet);
        async move {
            request
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        }
    })
    .await;
    let survey = app.create_survey().await;

    let first = post(&app, Some(KEY), Some("k-1"), &kiosk(&survey), &stars(4)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let other_body = post(&app, Some(KEY), Some("k-1"), &kiosk(&survey), &stars(5)).await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other_body.json()["error"]["code"], "idempotency_key_reused");
    let other_path = post(&app, Some(KEY), Some("k-1"), "/api/surveys", &stars(4)).await;
    assert_eq!(other_path.json()["error"]["code"], "idempotency_key_reused");

    let other_key = post(&app, Some(&tablet), Some("k-1"), &kiosk(&survey), &stars(5)).await;
    assert_eq!(other_key.status, StatusCode::CREATED, "{}", other_key.body);
    assert!(
        !other_key.replayed(),
        "another API key's k-1 is another key"
    );
    assert_eq!(app.rows("responses"), 2);
}

#[tokio::test]
async fn a_repeat_while_the_first_is_still_handled_is_a_409_and_then_a_replay() {
    let gate = Gate::new();
    let held = gate.clone();
    let receiver = Receiver::scripted(move |_, _| Reply::ok().held(&held)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    // The attempt waits for the test, not for a timer.
    args.delivery_timeout_ms = Some(60_000);
    let app = Arc::new(spawn_app_with(args, Some(dir)).await);
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/his"), json!({}))
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}/test");

    let first = tokio::spawn({
        let (app, path) = (app.clone(), path.clone());
        async move { post(&app, Some(KEY), Some("test-1"), &path, &json!({})).await }
    });
    wait_until(
        "the test reaches the receiver",
        Duration::from_secs(10),
        || async { receiver.count() == 1 },
    )
    .await;
    let meanwhile = post(&app, Some(KEY), Some("test-1"), &path, &json!({})).await;
    assert_eq!(meanwhile.status, StatusCode::CONFLICT);
    assert_eq!(meanwhile.json()["error"]["code"], "idempotency_in_progress");

    gate.release_one();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.json()["status"], "succeeded");
    let after = post(&app, Some(KEY), Some("test-1"), &path, &json!({})).await;
    assert!(after.replayed());
    assert_eq!(after.body, first.body);
    assert_eq!(receiver.count(), 1, "the test was sent once");
}

#[tokio::test]
async fn kept_answers_survive_a_restart() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let first = post(
        &app,
        Some(KEY),
        Some("before-restart"),
        &kiosk(&survey),
        &stars(3),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);

    let app = app.restart().await;
    let again = post(
        &app,
        Some(KEY),
        Some("before-restart"),
        &kiosk(&survey),
        &stars(3),
    )
    .await;
    assert!(again.replayed());
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(app.rows("responses"), 1);
}

/// A survey sent to two contacts; answers the two links' tokens.
async fn two_links(app: &TestApp, survey: &str) -> (String, String) {
    let mut ids = Vec::new();
    for email in ["a@clinic.example", "b@clinic.example"] {
        let (status, body) = app
            .post("/api/directory/contacts/upsert", json!({"email": email}))
            .await;
        assert!(status.is_success(), "{body}");
        ids.push(body["contact"]["id"].clone());
    }
    let (status, sent) = app
        .post(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": ids, "channel": "link"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let token = |i: usize| sent["invitations"][i]["token"].as_str().unwrap().to_owned();
    (token(0), token(1))
}

#[tokio::test]
async fn a_respondent_completion_repeated_with_its_key_is_replayed_per_link() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let (one, two) = two_links(&app, &survey).await;
    let complete = json!({"answers": {"stars": {"value": 5}}, "complete": true});

    let first = post(&app, None, Some("save-1"), &format!("/r/{one}"), &complete).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = post(&app, None, Some("save-1"), &format!("/r/{one}"), &complete).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a replay, not already_completed"
    );
    assert!(again.replayed());
    assert_eq!(again.body, first.body);
    let without_key = post(&app, None, None, &format!("/r/{one}"), &complete).await;
    assert_eq!(without_key.json()["error"]["code"], "already_completed");

    let other_link = post(&app, None, Some("save-1"), &format!("/r/{two}"), &complete).await;
    assert_eq!(other_link.status, StatusCode::OK);
    assert!(!other_link.replayed(), "each link has its own keys");
    assert_eq!(app.rows("responses"), 2);
    let stored: String = app
        .db()
        .query_row(
            "SELECT group_concat(scope) FROM idempotency_keys",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !stored.contains(&one) && !stored.contains(&two),
        "tokens are kept only as hashes"
    );
}

#[tokio::test]
async fn a_refusal_is_kept_and_answered_again() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let bad = stars(9);
    let first = post(&app, Some(KEY), Some("bad-1"), &kiosk(&survey), &bad).await;
    assert_eq!(first.status, StatusCode::UNPROCESSABLE_ENTITY);
    let again = post(&app, Some(KEY), Some("bad-1"), &kiosk(&survey), &bad).await;
    assert!(again.replayed());
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.body, first.body);
    assert_eq!(app.rows("responses"), 0);
}

#[tokio::test]
async fn a_malformed_key_is_refused_and_without_a_key_nothing_changes() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    for key in ["two words", &"k".repeat(256), "caf\u{e9}"] {
        let refused = post(&app, Some(KEY), Some(key), &kiosk(&survey), &stars(4)).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{key}");
        let error = refused.json();
        assert_eq!(error["error"]["code"], "validation_failed");
        assert_eq!(error["error"]["details"][0]["field"], "Idempotency-Key");
    }
    assert_eq!(app.rows("responses"), 0, "a refused key does nothing");
    let huge = json!({"answers": {"stars": {"value": 4}}, "metadata": {"x": "x".repeat(1 << 20)}});
    let too_large = post(&app, Some(KEY), Some("huge"), &kiosk(&survey), &huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.json()["error"]["code"], "payload_too_large");

    let one = post(&app, Some(KEY), None, &kiosk(&survey), &stars(4)).await;
    let two = post(&app, Some(KEY), None, &kiosk(&survey), &stars(4)).await;
    assert_eq!(
        (one.status, two.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert!(!one.replayed() && !two.replayed());
    assert_ne!(one.json()["id"], two.json()["id"]);
    assert_eq!(app.rows("responses"), 2);
    assert_eq!(app.rows("idempotency_keys"), 0);
}
