//! What is recorded and how to repair it: response bodies, the test route, retry, the list.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Receiver, Reply, spawn_app, wait_until};
use crate::signing::verify;
use crate::{WAIT, delivery_detail};

#[tokio::test]
async fn long_response_bodies_are_kept_to_4096_bytes() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::ok().body("x".repeat(10 * 1024))).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
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
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
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
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
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
