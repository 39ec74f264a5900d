//! The routes around the API: health, readiness, the event catalog, the OpenAPI document.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::spawn_app;

#[tokio::test]
async fn the_service_routes_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, types) = app.get("/api/event-types").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = types["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["survey.response_completed", "survey.response_started"]
    );
    let (status, undecodable) = app.get("/api/surveys/%FF/webhooks").await;
    assert_eq!(
        (status, undecodable["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "a path that cannot be decoded names nothing, in the contract's shape"
    );
    let (status, unknown) = app.get("/api/nothing-here").await;
    assert_eq!(
        (status, unknown["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/surveys", "post"),
        ("/api/surveys", "get"),
        ("/api/surveys/{surveyId}", "get"),
        ("/api/surveys/{surveyId}/responses", "post"),
        ("/api/surveys/{surveyId}/responses/{responseId}", "get"),
        ("/api/surveys/{surveyId}/webhooks", "post"),
        ("/api/surveys/{surveyId}/webhooks", "get"),
        ("/api/surveys/{surveyId}/webhooks/{id}", "get"),
        ("/api/surveys/{surveyId}/webhooks/{id}", "patch"),
        ("/api/surveys/{surveyId}/webhooks/{id}", "delete"),
        ("/api/surveys/{surveyId}/webhooks/{id}/test", "post"),
        ("/api/surveys/{surveyId}/webhooks/{id}/deliveries", "get"),
        (
            "/api/surveys/{surveyId}/webhooks/{id}/deliveries/{deliveryId}",
            "get",
        ),
        (
            "/api/surveys/{surveyId}/webhooks/{id}/deliveries/{deliveryId}/retry",
            "post",
        ),
        ("/api/surveys/{surveyId}/webhooks/{id}/replay", "post"),
        ("/api/event-types", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
}
