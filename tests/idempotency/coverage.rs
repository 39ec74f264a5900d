//! Idempotency across the whole API: the header documented on every POST, answers that
//! expire after 24 hours, and every POST that changes something changing it once.

use super::*;

#[tokio::test]
async fn every_post_of_the_openapi_document_names_the_idempotency_key_header() {
    let app = spawn_app().await;
    let (_, doc) = app.get("/api/openapi.json").await;
    let mut posts = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(post) = item.get("post") else {
            continue;
        };
        posts += 1;
        let named = post["parameters"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        assert!(named, "POST {path} documents Idempotency-Key");
    }
    assert!(posts >= 9);
}

#[tokio::test]
async fn an_answer_older_than_24_hours_is_not_replayed_and_the_retention_job_forgets_it() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let first = post(
        &app,
        Some(KEY),
        Some("yesterday"),
        &kiosk(&survey),
        &stars(3),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let mut app = app;
    app.stop().await;
    let day_and_a_bit = 25 * 60 * 60 * 1000;
    app.db()
        .execute(
            "UPDATE idempotency_keys SET created_at = created_at - ?1",
            [day_and_a_bit],
        )
        .unwrap();

    // The retention job runs once at start, then hourly.
    let app = app.restart().await;
    wait_until(
        "the old answer is purged",
        Duration::from_secs(10),
        || async { app.rows("idempotency_keys") == 0 },
    )
    .await;
    let again = post(
        &app,
        Some(KEY),
        Some("yesterday"),
        &kiosk(&survey),
        &stars(3),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(!again.replayed(), "a key is answered for 24 hours only");
    assert_eq!(app.rows("responses"), 2);
}

/// Posts `body` twice with the same key: the second answer is the first, replayed.
async fn twice(app: &TestApp, key: &str, path: &str, body: &Value) -> Answered {
    let first = post(app, Some(KEY), Some(key), path, body).await;
    assert!(
        first.status.is_success(),
        "{path}: {} {}",
        first.status,
        first.body
    );
    let again = post(app, Some(KEY), Some(key), path, body).await;
    assert!(again.replayed(), "{path} replays its first answer");
    assert_eq!(again.status, first.status, "{path}");
    assert_eq!(again.body, first.body, "{path}");
    first
}

#[tokio::test]
async fn every_post_that_changes_something_replays_its_answer_and_changes_it_once() {
    let receiver = Receiver::start().await;
    let app = spawn_app().await;
    let survey = twice(
        &app,
        "survey",
        "/api/surveys",
        &json!({"title": "Stay", "questions": [
        {"id": "stars", "type": "rating", "text": "Stars", "required": true}]}),
    )
    .await
    .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upsert = "/api/directory/contacts/upsert";
    let contact = twice(
        &app,
        "contact",
        upsert,
        &json!({"email": "a@clinic.example"}),
    )
    .await;
    let contact = contact.json()["contact"]["id"].clone();
    let bulk = json!({"contacts": [{"email": "b@clinic.example"}, {"externalId": "P-3"}]});
    twice(&app, "bulk", upsert, &bulk).await;
    let quick = format!("/api/surveys/{survey}/distributions/quick");
    twice(
        &app,
        "send",
        &quick,
        &json!({"contactIds": [contact], "channel": "link"}),
    )
    .await;
    let status = format!("/api/surveys/{survey}/responses/bulk-status");
    twice(&app, "status", &status, &json!({"contactIds": [contact]})).await;
    assert_eq!(app.rows("surveys"), 1);
    assert_eq!(app.rows("contacts"), 3);
    assert_eq!(app.rows("distributions"), 1);
    assert_eq!(app.rows("invitations"), 1);

    let webhook = app
        .create_webhook(&survey, &receiver.url("/his"), json!({}))
        .await;
    app.complete_response(&survey, 5).await;
    wait_until(
        "the delivery succeeded",
        Duration::from_secs(10),
        || async { app.count_with_status(&survey, &webhook, "succeeded").await == 1 },
    )
    .await;
    let delivery = app.deliveries(&survey, &webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook = format!("/api/surveys/{survey}/webhooks/{webhook}");
    twice(
        &app,
        "retry",
        &format!("{hook}/deliveries/{delivery}/retry"),
        &json!({}),
    )
    .await;
    wait_until("the retry was sent", Duration::from_secs(10), || async {
        receiver.count() == 2
    })
    .await;
    let since = json!({"since": "2020-01-01T00:00:00.000Z"});
    twice(&app, "replay", &format!("{hook}/replay"), &since).await;
    let retried: i64 = app
        .db()
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'delivery.retried'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(retried, 1, "one retry, however often it was asked");
    assert_eq!(receiver.count(), 2);
}
