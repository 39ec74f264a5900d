//! `GET` and `POST /api/surveys/{id}/responses/bulk-status`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{answer, bad_fields, contact, quick, survey_of_every_type, token};
use crate::common::spawn_app;

#[tokio::test]
async fn bulk_status_reports_all_four_statuses_in_the_order_asked() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let mut ids = Vec::new();
    for name in ["never", "invited", "started", "completed"] {
        ids.push(contact(&app, json!({"externalId": name})).await);
    }
    let sent = quick(&app, &survey, &[&ids[1], &ids[2], &ids[3]], json!({})).await;
    let (status, started) = answer(
        &app,
        &token(&sent, 1),
        json!({"answers": {}, "complete": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, completed) = answer(
        &app,
        &token(&sent, 2),
        json!({"answers": {"stars": {"value": 3}}, "complete": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let asked = [&ids[3], &ids[0], &ids[2], &ids[1]];
    let path = format!("/api/surveys/{survey}/responses/bulk-status");
    let (status, by_get) = app
        .get(&format!(
            "{path}?contactIds={}",
            asked.map(String::as_str).join(",")
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{by_get}");
    let (status, by_post) = app.post(&path, json!({"contactIds": asked})).await;
    assert_eq!(status, StatusCode::OK, "{by_post}");
    assert_eq!(by_get, by_post);

    let items = by_get["items"].as_array().unwrap();
    let order: Vec<&Value> = items.iter().map(|i| &i["contactId"]).collect();
    assert_eq!(order, asked.map(|id| json!(id)).iter().collect::<Vec<_>>());
    let statuses: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "not_invited", "started", "invited"]);

    let [done, never, begun, waiting] = [&items[0], &items[1], &items[2], &items[3]];
    assert_eq!(done["responseId"], completed["responseId"]);
    assert_eq!(done["completedAt"], completed["completedAt"]);
    assert!(done["invitedAt"].is_string() && done["startedAt"].is_string());
    assert_eq!(begun["responseId"], started["responseId"]);
    assert!(begun["startedAt"].is_string() && begun["completedAt"].is_null());
    assert!(waiting["invitedAt"].is_string() && waiting["responseId"].is_null());
    assert!(waiting["startedAt"].is_null());
    for field in ["invitedAt", "startedAt", "completedAt", "responseId"] {
        assert!(never[field].is_null(), "{field}");
    }
}

#[tokio::test]
async fn a_kiosk_response_of_a_contact_counts_as_completed() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let walk_in = contact(&app, json!({"externalId": "walk-in"})).await;
    let (status, _) = app
        .post(
            &format!("/api/surveys/{survey}/responses"),
            json!({"contactId": walk_in, "answers": {"stars": {"value": 5}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = app
        .get(&format!(
            "/api/surveys/{survey}/responses/bulk-status?contactIds={walk_in}"
        ))
        .await;
    assert_eq!(body["items"][0]["status"], "completed");
    assert!(body["items"][0]["invitedAt"].is_null());
}

#[tokio::test]
async fn bulk_status_checks_its_limits() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let one = contact(&app, json!({"externalId": "one"})).await;
    let path = format!("/api/surveys/{survey}/responses/bulk-status");
    let thousand: Vec<&str> = (0..1000).map(|_| one.as_str()).collect();
    let (status, body) = app.post(&path, json!({"contactIds": thousand})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1000);

    let too_many: Vec<&str> = (0..1001).map(|_| one.as_str()).collect();
    for ids in [json!(too_many), json!([]), json!(["nope"]), json!("x")] {
        let (status, body) = app.post(&path, json!({"contactIds": ids})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad_fields(&body), ["contactIds"]);
    }
    for query in ["", "?contactIds=", "?contactIds=nope"] {
        let (status, body) = app.get(&format!("{path}{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(bad_fields(&body), ["contactIds"]);
    }
    let (status, _) = app
        .get(&format!(
            "/api/surveys/0190f7a8-0000-7000-8000-000000000000/responses/bulk-status?contactIds={one}"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
