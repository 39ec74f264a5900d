//! `GET /r/{token}` and `POST /r/{token}`: no API key, partial saves, completion, the
//! events each emits exactly once, expiry, validation and the patient's page.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{answer, bad_fields, contact, quick, show, survey_of_every_type, token};
use crate::common::{Receiver, TestApp, spawn_app, wait_until};

/// A survey, one contact invited with embedded data, and a webhook for both events.
async fn invited(app: &TestApp, receiver: &Receiver) -> (String, String, String, String) {
    let survey = survey_of_every_type(app).await;
    let patient = contact(app, json!({"externalId": "P-1"})).await;
    let sent = quick(
        app,
        &survey,
        &[&patient],
        json!({"embeddedData": {"visitId": "V-9"}}),
    )
    .await;
    let webhook = app
        .create_webhook(
            &survey,
            &receiver.url("/hook"),
            json!({"events": ["survey.response_started", "survey.response_completed"]}),
        )
        .await;
    (survey, patient, token(&sent, 0), webhook)
}

/// The event types of a webhook's deliveries, oldest first.
async fn delivered_types(app: &TestApp, survey: &str, webhook: &str) -> Vec<String> {
    let mut types: Vec<String> = app
        .deliveries(survey, webhook)
        .await
        .iter()
        .map(|d| d["eventType"].as_str().unwrap().to_owned())
        .collect();
    types.reverse();
    types
}

#[tokio::test]
async fn the_respondent_routes_need_no_api_key_and_unknown_tokens_are_not_found() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, _, token, _) = invited(&app, &receiver).await;
    let (status, body) = show(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["survey"]["id"], json!(survey));
    assert_eq!(body["survey"]["questions"].as_array().unwrap().len(), 5);
    assert_eq!(body["status"], "not_started");
    assert_eq!(body["answers"], json!({}));
    assert!(body["expiresAt"].is_string());
    assert!(
        body.get("embeddedData").is_none(),
        "the HIS's data stays private"
    );

    for unknown in ["x".repeat(43), "no/such".into(), "a".repeat(500)] {
        let (status, body) = show(&app, &unknown).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        let (status, _) = answer(&app, &unknown, json!({"answers": {}, "complete": false})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        if !body.is_null() {
            assert_eq!(body["error"]["code"], "not_found");
        }
    }
}

#[tokio::test]
async fn partial_saves_emit_started_once_and_completion_emits_completed_once() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, patient, token, webhook) = invited(&app, &receiver).await;

    let (status, saved) = answer(
        &app,
        &token,
        json!({"answers": {"ward": {"choiceIds": ["north"]}},
               "embeddedData": {"device": "tablet", "visitId": "forged"}, "complete": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["status"], "started");
    let response_id = saved["responseId"].clone();
    let (_, again) = answer(
        &app,
        &token,
        json!({"answers": {"nps": {"value": 9}}, "complete": false}),
    )
    .await;
    assert_eq!(again["responseId"], response_id);
    assert_eq!(
        again["answers"],
        json!({"ward": {"choiceIds": ["north"]}, "nps": {"value": 9}})
    );
    assert_eq!(
        delivered_types(&app, &survey, &webhook).await,
        ["survey.response_started"]
    );

    let (_, shown) = show(&app, &token).await;
    assert_eq!(shown["status"], "started");
    assert_eq!(shown["answers"]["nps"], json!({"value": 9}));

    let (status, done) = answer(
        &app,
        &token,
        json!({"answers": {"stars": {"value": 4}, "nps": null},
               "metadata": {"lang": "en"}, "complete": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    assert!(done["completedAt"].is_string());
    assert_eq!(
        delivered_types(&app, &survey, &webhook).await,
        ["survey.response_started", "survey.response_completed"]
    );

    wait_until("both events arrived", Duration::from_secs(10), || async {
        receiver.count() == 2
    })
    .await;
    let completed = receiver
        .requests()
        .into_iter()
        .map(|r| r.json())
        .find(|e| e["eventType"] == "survey.response_completed")
        .unwrap();
    let data = &completed["data"];
    assert_eq!(data["responseId"], response_id);
    assert_eq!(data["contactId"], json!(patient));
    assert_eq!(
        data["answers"],
        json!({"ward": {"choiceIds": ["north"]}, "stars": {"value": 4}})
    );
    assert_eq!(
        data["embeddedData"],
        json!({"visitId": "V-9", "device": "tablet"})
    );
    assert_eq!(data["metadata"], json!({"lang": "en"}));

    let (status, stored) = app
        .get(&format!(
            "/api/surveys/{survey}/responses/{}",
            response_id.as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["answers"], data["answers"]);
}

#[tokio::test]
async fn a_second_completion_is_409_already_completed_and_emits_nothing() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, _, token, webhook) = invited(&app, &receiver).await;
    let body = json!({"answers": {"stars": {"value": 5}}, "complete": true});
    let (status, _) = answer(&app, &token, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        delivered_types(&app, &survey, &webhook).await,
        ["survey.response_started", "survey.response_completed"],
        "a completion without an earlier save also starts the response"
    );
    for late in [
        body,
        json!({"answers": {"note": {"value": "more"}}, "complete": false}),
    ] {
        let (status, refused) = answer(&app, &token, late).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(refused["error"]["code"], "already_completed");
    }
    assert_eq!(delivered_types(&app, &survey, &webhook).await.len(), 2);
    let (_, shown) = show(&app, &token).await;
    assert_eq!(shown["status"], "completed");
}

#[tokio::test]
async fn an_expired_link_is_not_found() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (_, _, token, _) = invited(&app, &receiver).await;
    let db = rusqlite::Connection::open(app.data_dir.join("hookd.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute("UPDATE invitations SET expires_at = 1000", [])
        .unwrap();
    let (status, _) = show(&app, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = answer(
        &app,
        &token,
        json!({"answers": {"stars": {"value": 5}}, "complete": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = answer(&app, &token, json!({"answers": "whatever"})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a dead link is 404 whatever the body"
    );
    let page = app
        .client
        .get(app.url(&format!("/r/{token}")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains(r#""view":"gone""#));
}

#[tokio::test]
async fn answers_are_validated_by_the_same_rules_for_kiosk_and_respondent() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, _, token, webhook) = invited(&app, &receiver).await;
    let bad = json!({
        "ghost": {"value": 1},
        "ward": {"choiceIds": ["north", "south"]},
        "topics": {"choiceIds": ["nope"]},
        "nps": {"value": 11},
        "note": {"value": 3}
    });
    let mut expected = vec![
        "answers.ghost",
        "answers.ward",
        "answers.topics",
        "answers.nps",
        "answers.note",
        "answers.stars",
    ];
    expected.sort();
    let (status, kiosk) = app
        .post(
            &format!("/api/surveys/{survey}/responses"),
            json!({"answers": bad}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, respondent) =
        answer(&app, &token, json!({"answers": bad, "complete": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for body in [&kiosk, &respondent] {
        let mut fields = bad_fields(body);
        fields.sort();
        assert_eq!(fields, expected);
    }

    // A partial save may leave `stars` open but not break the other rules.
    let (status, partial) = answer(
        &app,
        &token,
        json!({"answers": {"stars": {"value": 0}}, "complete": false}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&partial), ["answers.stars"]);
    let (status, _) = answer(
        &app,
        &token,
        json!({"answers": {"note": {"value": "later"}}, "complete": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, missing) = answer(&app, &token, json!({"answers": {}, "complete": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&missing), ["answers.stars"]);
    for body in [
        json!({"answers": {}}),
        json!({"complete": true}),
        json!({"answers": [], "complete": "yes"}),
    ] {
        let (status, _) = answer(&app, &token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        delivered_types(&app, &survey, &webhook).await,
        ["survey.response_started"]
    );
}

#[tokio::test]
async fn a_browser_gets_the_patients_page_with_survey_text_escaped() {
    let app = spawn_app().await;
    let (status, survey) = app
        .post(
            "/api/surveys",
            json!({"title": "</script><script>alert('x')</script>", "questions": [
                {"id": "q", "type": "text", "text": "<img src=x onerror=alert(1)>"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let patient = contact(&app, json!({"externalId": "P-1"})).await;
    let sent = quick(&app, survey["id"].as_str().unwrap(), &[&patient], json!({})).await;
    let page = app
        .client
        .get(app.url(&format!("/r/{}", token(&sent, 0))))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("Save and continue later"));
    assert!(!html.contains("<script>alert"), "survey text is not markup");
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("src=\"http"), "no external assets");
}

#[tokio::test]
async fn the_openapi_document_lists_the_respondent_routes_as_public() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = &doc["paths"];
    for (path, method) in [
        ("/r/{token}", "get"),
        ("/r/{token}", "post"),
        ("/api/directory/contacts/upsert", "post"),
        ("/api/directory/contacts", "get"),
        ("/api/directory/contacts/{contactId}", "get"),
        ("/api/surveys/{surveyId}/distributions/quick", "post"),
        ("/api/surveys/{surveyId}/responses/bulk-status", "get"),
        ("/api/surveys/{surveyId}/responses/bulk-status", "post"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert_eq!(paths["/r/{token}"]["post"]["security"], json!([{}]));
}
