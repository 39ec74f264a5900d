//! The survey platform (SPEC §5) against the real server: contacts, quick distributions,
//! the respondent routes, bulk status, and the whole integration pattern end to end with a
//! real receiver.

#[path = "../common/mod.rs"]
mod common;

mod bulk_status;
mod contacts;
mod distributions;
mod end_to_end;
mod respondents;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::TestApp;

/// A survey with one question of every type; `stars` is required.
async fn survey_of_every_type(app: &TestApp) -> String {
    app.create_survey_of_every_type("After your visit").await
}

/// Upserts one contact and returns its id.
async fn contact(app: &TestApp, body: Value) -> String {
    let (status, answer) = app.post("/api/directory/contacts/upsert", body).await;
    assert!(status.is_success(), "{status} {answer}");
    answer["contact"]["id"].as_str().unwrap().to_owned()
}

/// Sends `survey` to `contacts` as links; returns the distribution's answer.
async fn quick(app: &TestApp, survey: &str, contacts: &[&str], extra: Value) -> Value {
    let mut body = json!({"contactIds": contacts, "channel": "link"});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let (status, answer) = app
        .post(&format!("/api/surveys/{survey}/distributions/quick"), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

/// The token of the `i`th invitation of a distribution's answer.
fn token(distribution: &Value, i: usize) -> String {
    distribution["invitations"][i]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /r/{token}` as an API client, without an API key.
async fn show(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(&format!("/r/{token}")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /r/{token}` without an API key.
async fn answer(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(&format!("/r/{token}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The fields named in a 422's details; the answer must be one.
fn bad_fields(body: &Value) -> Vec<String> {
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    common::bad_fields(body)
}
