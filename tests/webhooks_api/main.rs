//! The webhook management API (SPEC §2, §3): validation, auth, PATCH semantics, delete,
//! body errors, persistence across restarts, and the service routes.

#[path = "../common/mod.rs"]
mod common;

mod service;
mod validation;

use common::{KEY, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A webhook body that passes every rule.
pub fn valid() -> Value {
    json!({"name": "HIS", "url": "https://his.example.com/hook", "events": ["survey.response_completed"]})
}

pub fn with(changes: Value) -> Value {
    let mut body = valid();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() && k != "secret" {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

pub fn fields_of(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_valid_webhook_is_created_with_defaults_and_without_its_secret() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let body = with(
        json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "headers": {"X-Clinic": "north"}, "surveyId": survey}),
    );
    let response = app
        .client
        .post(app.url(&format!("/api/surveys/{survey}/webhooks")))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/api/surveys/{survey}/webhooks/{}",
            created["id"].as_str().unwrap()
        )
    );
    assert_eq!(created["isActive"], true);
    assert_eq!(created["hasSecret"], true);
    assert_eq!(created["retryPolicy"], json!([1, 5, 30, 300, 1800, 7200]));
    assert_eq!(created["consecutiveFailures"], 0);
    assert_eq!(created["headers"], json!({"X-Clinic": "north"}));
    assert!(created.get("secret").is_none());
    assert!(
        !created
            .to_string()
            .contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    let timestamp = created["createdAt"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.len() == 24,
        "RFC 3339 UTC with milliseconds: {timestamp}"
    );
    let (_, fetched) = app.get(&location).await;
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn the_active_alias_and_allowed_networks_and_hosts_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = common::test_args(dir.path());
    args.allow_http = Some(false);
    args.allow_networks = Some("10.1.2.0/24".into());
    args.allow_hosts = Some("his.clinic.local,.ward.internal".into());
    let app = common::spawn_app_with(args, Some(dir)).await;
    let survey = app.create_survey().await;
    let path = format!("/api/surveys/{survey}/webhooks");
    let (status, created) = app
        .post(
            &path,
            with(json!({"url": "https://10.1.2.7/hook", "active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["isActive"], false);
    for url in [
        "https://his.clinic.local/hook",
        "https://a.ward.internal/hook",
        "https://[::ffff:10.1.2.8]/hook",
    ] {
        let (status, answer) = app.post(&path, with(json!({"url": url}))).await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {answer}");
    }
    for url in [
        "https://10.1.3.7/hook",
        "http://his.example.com/hook",
        "https://other.clinic.local/hook",
    ] {
        let (status, _) = app.post(&path, with(json!({"url": url}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
    }
}

#[tokio::test]
async fn a_survey_holds_at_most_ten_webhooks() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    for _ in 0..10 {
        app.create_webhook(&survey, "https://his.example.com/hook", json!({}))
            .await;
    }
    let (status, answer) = app
        .post(&format!("/api/surveys/{survey}/webhooks"), valid())
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["error"]["code"], "limit_exceeded");
}

#[tokio::test]
async fn unknown_surveys_and_ids_under_another_survey_are_404() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let other = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, "https://his.example.com/hook", json!({}))
        .await;
    let unknown = "01234567-89ab-7def-8123-456789abcdef";
    for path in [
        format!("/api/surveys/{unknown}/webhooks"),
        format!("/api/surveys/{other}/webhooks/{webhook}"),
        format!("/api/surveys/{survey}/webhooks/{unknown}"),
        format!("/api/surveys/{survey}/webhooks/not-a-uuid"),
        format!("/api/surveys/{other}/webhooks/{webhook}/deliveries"),
    ] {
        let (status, answer) = app.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer["error"]["code"], "not_found");
    }
    let (status, _) = app
        .post(&format!("/api/surveys/{unknown}/webhooks"), valid())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .patch(
            &format!("/api/surveys/{other}/webhooks/{webhook}"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/api/surveys/{other}/webhooks/{webhook}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401() {
    let app = spawn_app().await;
    let url = app.url("/api/surveys");
    let cases = [
        None,
        Some("Bearer wrong-key-0123456789"),
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer "),
    ];
    for header in cases {
        let mut request = app.client.get(&url);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, _) = app.get("/api/surveys").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn patch_changes_only_the_fields_given_and_null_removes_the_secret() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            "https://his.example.com/hook",
            json!({"secret": "0123456789abcdef0123", "headers": {"X-A": "1"}}),
        )
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    let (_, before) = app.get(&path).await;
    let (status, after) = app.patch(&path, json!({"name": "HIS north"})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["name"], "HIS north");
    for field in [
        "url",
        "events",
        "hasSecret",
        "headers",
        "isActive",
        "retryPolicy",
        "createdAt",
    ] {
        assert_eq!(after[field], before[field], "{field} unchanged");
    }
    let (_, after) = app.patch(&path, json!({"secret": null})).await;
    assert_eq!(after["hasSecret"], false);
    let (_, after) = app
        .patch(
            &path,
            json!({"isActive": false, "retryPolicy": [], "events": ["survey.response_started"]}),
        )
        .await;
    assert_eq!(
        (after["isActive"].clone(), after["retryPolicy"].clone()),
        (json!(false), json!([]))
    );
    assert_eq!(after["events"], json!(["survey.response_started"]));
    let (status, answer) = app
        .patch(&path, json!({"url": "https://localhost/x", "name": ""}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields_of(&answer).len(), 2);
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(
        unchanged["url"], before["url"],
        "a refused patch changes nothing"
    );
}

#[tokio::test]
async fn a_deleted_webhook_is_gone() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, "https://his.example.com/hook", json!({}))
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    let (status, _) = app.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_oversized_bodies_are_refused_in_the_contract_shape()
{
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let url = app.url(&format!("/api/surveys/{survey}/webhooks"));
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            b"{\"name\": ".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            b"[1, 2]".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            valid().to_string().into_bytes(),
            "text/plain",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            valid().to_string().into_bytes(),
            "application/x-www-form-urlencoded",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            vec![b' '; 1024 * 1024 + 10],
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let response = send(body, content_type).await.unwrap();
        assert_eq!(response.status(), status, "{content_type}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code);
    }
}

#[tokio::test]
async fn lists_are_paginated_with_a_cursor() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            app.create_webhook(&survey, "https://his.example.com/hook", json!({}))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(&format!(
                "/api/surveys/{survey}/webhooks?limit=2&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, created);
    for bad in ["limit=0", "limit=201", "limit=abc", "cursor=zzz"] {
        let (status, _) = app
            .get(&format!("/api/surveys/{survey}/webhooks?{bad}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn webhooks_and_surveys_survive_a_restart_on_the_same_data_dir() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            "https://his.example.com/hook",
            json!({"secret": "0123456789abcdef0123"}),
        )
        .await;
    let path = format!("/api/surveys/{survey}/webhooks/{webhook}");
    let (_, before) = app.get(&path).await;
    let app = app.restart().await;
    let (status, after) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, before);
    assert_eq!(
        app.get(&format!("/api/surveys/{survey}")).await.0,
        StatusCode::OK
    );
}
