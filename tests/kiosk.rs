//! Surveys and the kiosk submission (SPEC §5): answer validation, and the response, its
//! event and its deliveries written in one transaction.

mod common;

use common::spawn_app;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn full_survey(app: &common::TestApp) -> String {
    let (status, body) = app
        .post(
            "/api/surveys",
            json!({"title": "Stay", "questions": [
                {"id": "q_text", "type": "text", "text": "Comments", "required": true},
                {"id": "q_one", "type": "single_choice", "text": "Ward", "choices": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]},
                {"id": "q_many", "type": "multi_choice", "text": "Services", "choices": [{"id": "x", "label": "X"}, {"id": "y", "label": "Y"}]},
                {"id": "q_rating", "type": "rating", "text": "Stars"},
                {"id": "q_nps", "type": "nps", "text": "Recommend"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn surveys_are_validated_created_listed_and_read() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"questions": [{"id": "q", "type": "text", "text": "T"}]}),
            "title",
        ),
        (json!({"title": "T", "questions": []}), "questions"),
        (
            json!({"title": "T", "questions": [{"id": "q", "type": "slider", "text": "T"}]}),
            "questions",
        ),
        (
            json!({"title": "T", "questions": [{"id": "q", "type": "text", "text": "A"}, {"id": "q", "type": "text", "text": "B"}]}),
            "questions[1].id",
        ),
        (
            json!({"title": "T", "questions": [{"id": "q", "type": "single_choice", "text": "A"}]}),
            "questions[0].choices",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/surveys", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            answer
                .to_string()
                .contains(&format!("\"field\":\"{field}\"")),
            "{field}: {answer}"
        );
    }
    let survey = full_survey(&app).await;
    let (status, fetched) = app.get(&format!("/api/surveys/{survey}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["questions"].as_array().unwrap().len(), 5);
    let (_, listed) = app.get("/api/surveys").await;
    assert_eq!(listed["items"][0]["id"], json!(survey));
}

#[tokio::test]
async fn kiosk_answers_are_validated_against_the_survey() {
    let app = spawn_app().await;
    let survey = full_survey(&app).await;
    let path = format!("/api/surveys/{survey}/responses");
    let ok = json!({"q_text": {"value": "Fine"}});
    let cases = [
        (json!({"q_rating": {"value": 4}}), "answers.q_text"),
        (
            json!({"q_text": {"value": "x"}, "q_unknown": {"value": 1}}),
            "answers.q_unknown",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_one": {"choiceIds": ["z"]}}),
            "answers.q_one",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_one": {"choiceIds": ["a", "b"]}}),
            "answers.q_one",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_many": {"choiceIds": ["x", "x"]}}),
            "answers.q_many",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_rating": {"value": 6}}),
            "answers.q_rating",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_rating": {"value": 0}}),
            "answers.q_rating",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_nps": {"value": 11}}),
            "answers.q_nps",
        ),
        (
            json!({"q_text": {"value": "x"}, "q_nps": {"value": 2.5}}),
            "answers.q_nps",
        ),
        (json!({"q_text": {"value": 5}}), "answers.q_text"),
    ];
    for (answers, field) in cases {
        let (status, answer) = app.post(&path, json!({"answers": answers})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answers}");
        assert!(
            answer
                .to_string()
                .contains(&format!("\"field\":\"{field}\"")),
            "{field}: {answer}"
        );
    }
    let (status, answer) = app
        .post(
            &path,
            json!({"answers": ok, "contactId": "01234567-89ab-7def-8123-456789abcdef"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown contact: {answer}"
    );
    let (status, _) = app
        .post(&path, json!({"answers": ok, "metadata": "kiosk-1"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.rows("responses"), 0, "nothing invalid was stored");
}

#[tokio::test]
async fn a_kiosk_response_is_stored_with_its_event_and_one_delivery_per_matching_active_webhook() {
    let app = spawn_app().await;
    let survey = full_survey(&app).await;
    app.create_webhook(&survey, "https://his.example.com/a", json!({}))
        .await;
    app.create_webhook(&survey, "https://his.example.com/b", json!({}))
        .await;
    app.create_webhook(
        &survey,
        "https://his.example.com/c",
        json!({"isActive": false}),
    )
    .await;
    app.create_webhook(
        &survey,
        "https://his.example.com/d",
        json!({"events": ["survey.response_started"]}),
    )
    .await;
    let answers = json!({"q_text": {"value": "Fine"}, "q_many": {"choiceIds": ["x", "y"]}, "q_nps": {"value": 10}});
    let (status, response) = app
        .post(&format!("/api/surveys/{survey}/responses"), json!({"answers": answers, "embeddedData": {"ward": "3B"}, "metadata": {"kiosk": "lobby"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    assert_eq!(response["status"], "completed");
    let (status, fetched) = app
        .get(&format!(
            "/api/surveys/{survey}/responses/{}",
            response["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["answers"], answers);
    let conn = app.db();
    assert_eq!(app.rows("events"), 1);
    assert_eq!(
        app.rows("deliveries"),
        2,
        "one per active webhook subscribed to completions"
    );
    let payload: String = conn
        .query_row("SELECT payload FROM events", [], |row| row.get(0))
        .unwrap();
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["eventType"], "survey.response_completed");
    assert_eq!(event["surveyId"], json!(survey));
    assert_eq!(event["data"]["responseId"], response["id"]);
    assert_eq!(event["data"]["answers"], answers);
    assert_eq!(event["data"]["embeddedData"], json!({"ward": "3B"}));
    assert_eq!(event["data"]["metadata"], json!({"kiosk": "lobby"}));
    assert_eq!(event["data"]["contactId"], Value::Null);
    let other = app.create_survey().await;
    let (status, _) = app
        .get(&format!(
            "/api/surveys/{other}/responses/{}",
            response["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a response under another survey is not found"
    );
}

#[tokio::test]
async fn a_failure_while_writing_the_deliveries_leaves_no_response_and_no_event() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    app.create_webhook(&survey, "https://his.example.com/a", json!({}))
        .await;
    // Make the last write of the transaction (the delivery rows) fail.
    app.db()
        .execute_batch("CREATE TRIGGER injected_fault BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'injected fault'); END;")
        .unwrap();
    let (status, answer) = app
        .post(
            &format!("/api/surveys/{survey}/responses"),
            json!({"answers": {"stars": {"value": 3}}}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(answer["error"]["code"], "internal");
    assert!(
        !answer.to_string().contains("injected"),
        "internal causes are not shown"
    );
    let conn = app.db();
    assert_eq!(
        (
            app.rows("responses"),
            app.rows("events"),
            app.rows("deliveries")
        ),
        (0, 0, 0)
    );
    // The same submission succeeds once the fault is gone: nothing was left half-written.
    conn.execute_batch("DROP TRIGGER injected_fault").unwrap();
    app.complete_response(&survey, 3).await;
    assert_eq!(
        (
            app.rows("responses"),
            app.rows("events"),
            app.rows("deliveries")
        ),
        (1, 1, 1)
    );
}
