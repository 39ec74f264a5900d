//! Every bad field of a webhook body is refused, with a 422 naming it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::spawn_app;
use crate::{fields_of, with};

#[tokio::test]
async fn every_invalid_webhook_field_is_refused_with_422_naming_the_field() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let other_survey = app.create_survey().await;
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"name": ""})), "name"),
        (with(json!({"name": "x".repeat(201)})), "name"),
        (with(json!({"name": null})), "name"),
        (with(json!({"name": 7})), "name"),
        (with(json!({"url": null})), "url"),
        (with(json!({"url": "not a url"})), "url"),
        (with(json!({"url": "ftp://his.example.com/"})), "url"),
        (
            with(json!({"url": format!("https://his.example.com/{}", "a".repeat(2000))})),
            "url",
        ),
        (with(json!({"url": "https://localhost/hook"})), "url"),
        (with(json!({"url": "https://api.localhost/hook"})), "url"),
        (with(json!({"url": "https://vault.internal/hook"})), "url"),
        (with(json!({"url": "https://printer.local/hook"})), "url"),
        (with(json!({"url": "https://db.default.svc/hook"})), "url"),
        (with(json!({"url": "https://10.0.0.5/hook"})), "url"),
        (with(json!({"url": "https://192.168.1.10/hook"})), "url"),
        (with(json!({"url": "https://172.16.4.4/hook"})), "url"),
        (
            with(json!({"url": "https://169.254.169.254/latest/meta-data"})),
            "url",
        ),
        (with(json!({"url": "https://100.64.0.1/hook"})), "url"),
        (with(json!({"url": "https://0.0.0.0/hook"})), "url"),
        (with(json!({"url": "https://224.0.0.1/hook"})), "url"),
        (with(json!({"url": "https://255.255.255.255/hook"})), "url"),
        (with(json!({"url": "https://[::1]/hook"})), "url"),
        (with(json!({"url": "https://[fe80::1]/hook"})), "url"),
        (with(json!({"url": "https://[fd00::1]/hook"})), "url"),
        (
            with(json!({"url": "https://[::ffff:10.0.0.1]/hook"})),
            "url",
        ),
        (with(json!({"url": "https://[::]/hook"})), "url"),
        // SPEC §9: tunnels, documentation, benchmarking and protocol ranges.
        (with(json!({"url": "https://[::10.0.0.1]/hook"})), "url"),
        (with(json!({"url": "https://[2002:a00:1::1]/hook"})), "url"),
        (with(json!({"url": "https://[2001::1]/hook"})), "url"),
        (
            with(json!({"url": "https://[64:ff9b:1::a00:1]/hook"})),
            "url",
        ),
        (with(json!({"url": "https://[100::1]/hook"})), "url"),
        (with(json!({"url": "https://[2001:db8::1]/hook"})), "url"),
        (with(json!({"url": "https://198.18.0.1/hook"})), "url"),
        (with(json!({"url": "https://192.0.0.8/hook"})), "url"),
        (with(json!({"url": "https://192.0.2.1/hook"})), "url"),
        (with(json!({"url": "https://198.51.100.7/hook"})), "url"),
        (with(json!({"url": "https://203.0.113.9/hook"})), "url"),
        (with(json!({"events": null})), "events"),
        (with(json!({"events": []})), "events"),
        (with(json!({"events": ["survey.deleted"]})), "events"),
        (with(json!({"events": ["webhook.test"]})), "events"),
        (
            with(json!({"events": ["survey.response_completed", "survey.response_completed"]})),
            "events",
        ),
        (
            with(json!({"events": "survey.response_completed"})),
            "events",
        ),
        (with(json!({"secret": "too-short"})), "secret"),
        (with(json!({"secret": "s".repeat(501)})), "secret"),
        (with(json!({"secret": 12345678901234567i64})), "secret"),
        (with(json!({"headers": {"Host": "x"}})), "headers"),
        (
            with(json!({"headers": {"Content-Type": "text/plain"}})),
            "headers",
        ),
        (
            with(json!({"headers": {"X-Webhook-Signature": "forged"}})),
            "headers",
        ),
        (
            with(json!({"headers": {"webhook-id": "forged"}})),
            "headers",
        ),
        (
            with(json!({"headers": {"Transfer-Encoding": "chunked"}})),
            "headers",
        ),
        (with(json!({"headers": {"bad header": "v"}})), "headers"),
        (
            with(json!({"headers": {"X-Long": "v".repeat(1001)}})),
            "headers",
        ),
        (with(json!({"headers": {"X-Num": 5}})), "headers"),
        (
            with(
                json!({"headers": (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            ),
            "headers",
        ),
        (with(json!({"retryPolicy": [0]})), "retryPolicy"),
        (with(json!({"retryPolicy": [86_401]})), "retryPolicy"),
        (with(json!({"retryPolicy": vec![1; 11]})), "retryPolicy"),
        (with(json!({"retryPolicy": [1.5]})), "retryPolicy"),
        (with(json!({"isActive": "yes"})), "isActive"),
        (with(json!({"active": "yes"})), "active"),
        (with(json!({"surveyId": other_survey})), "surveyId"),
    ];
    for (body, field) in cases {
        let (status, answer) = app
            .post(&format!("/api/surveys/{survey}/webhooks"), body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert_eq!(answer["error"]["code"], "validation_failed");
        assert!(
            fields_of(&answer).contains(&field.to_owned()),
            "{body}: expected `{field}` in {answer}"
        );
    }
    let (_, listed) = app.get(&format!("/api/surveys/{survey}/webhooks")).await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "nothing invalid was stored"
    );
}

#[tokio::test]
async fn every_bad_field_is_listed_at_once() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let body = json!({"name": "", "url": "http://localhost", "events": [], "secret": "x", "retryPolicy": [0]});
    let (status, answer) = app
        .post(&format!("/api/surveys/{survey}/webhooks"), body)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = fields_of(&answer);
    fields.sort();
    assert_eq!(fields, ["events", "name", "retryPolicy", "secret", "url"]);
}
