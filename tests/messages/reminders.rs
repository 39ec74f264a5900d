//! Reminders (SPEC §10): sent after their delay to whoever has not completed, cancelled by
//! a completion and by the link's expiry.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{app_with_channels, contact, distribute, message_reaches, smtp, status_of};
use crate::common::TestApp;

/// (kind, status) of each message of invitation `i`.
fn messages_of(status: &Value, i: usize) -> Vec<(String, String)> {
    status["invitations"][i]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().into(),
                m["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, s)| ((*k).into(), (*s).into()))
        .collect()
}

/// Completes a response through the patient's link.
async fn complete_by_link(app: &TestApp, token: &str) {
    let response = app
        .client
        .post(app.url(&format!("/r/{token}")))
        .json(&json!({"answers": {"stars": {"value": 4}}, "complete": true}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test]
async fn a_reminder_goes_out_after_its_delay_with_the_same_link() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let ada = contact(
        &app,
        json!({"email": "ada@example.org", "firstName": "Ada"}),
    )
    .await;
    let sent = distribute(&app, &survey, &[&ada], "email", json!({"reminders": [1]})).await;
    let link = sent["invitations"][0]["url"].as_str().unwrap();
    let mails = smtp.wait_for(2).await;
    assert_eq!(
        mails[0].header("Subject").unwrap(),
        "Your survey: Discharge survey"
    );
    assert_eq!(
        mails[1].header("Subject").unwrap(),
        "Reminder: Discharge survey"
    );
    assert!(
        mails[1].parts()[0].1.contains(link),
        "the reminder carries the same link"
    );
    let reminder = message_reaches(&app, &survey, &sent, 0, 1, "sent").await;
    assert_eq!(reminder["kind"], "reminder");
    let status = status_of(&app, &survey, &sent).await;
    let invited = &status["invitations"][0]["messages"][0];
    let due = |m: &Value| {
        time::OffsetDateTime::parse(
            m["dueAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let gap = due(&reminder) - due(invited);
    assert_eq!(
        gap.whole_seconds(),
        1,
        "due one second after the invitation"
    );
}

#[tokio::test]
async fn completing_cancels_the_reminders_by_link_and_by_kiosk_but_not_the_others() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let by_link = contact(&app, json!({"email": "link@example.org"})).await;
    let by_kiosk = contact(&app, json!({"email": "kiosk@example.org"})).await;
    let waiting = contact(&app, json!({"email": "waiting@example.org"})).await;
    let sent = distribute(
        &app,
        &survey,
        &[&by_link, &by_kiosk, &waiting],
        "email",
        json!({"reminders": [3600, 7200]}),
    )
    .await;
    smtp.wait_for(3).await;

    complete_by_link(&app, sent["invitations"][0]["token"].as_str().unwrap()).await;
    let (status, body) = app
        .post(
            &format!("/api/surveys/{survey}/responses"),
            json!({"contactId": by_kiosk, "answers": {"stars": {"value": 5}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let status = status_of(&app, &survey, &sent).await;
    let cancelled = pairs(&[
        ("invitation", "sent"),
        ("reminder", "cancelled"),
        ("reminder", "cancelled"),
    ]);
    assert_eq!(messages_of(&status, 0), cancelled);
    assert_eq!(messages_of(&status, 1), cancelled);
    assert_eq!(
        messages_of(&status, 2),
        pairs(&[
            ("invitation", "sent"),
            ("reminder", "queued"),
            ("reminder", "queued")
        ])
    );
    let db = rusqlite::Connection::open(app.data_dir.join("hookd.db")).unwrap();
    let jobs: i64 = db
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        jobs, 2,
        "the cancelled reminders left the queue; the other two wait"
    );
}

#[tokio::test]
async fn a_reminder_due_after_the_link_expires_is_cancelled_from_the_start() {
    let smtp = smtp();
    let app = app_with_channels(Some(&smtp), None).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"email": "ada@example.org"})).await;
    let sent = distribute(
        &app,
        &survey,
        &[&ada],
        "email",
        json!({"expiresInDays": 1, "reminders": [3600, 90_000]}),
    )
    .await;
    smtp.wait_for(1).await;
    let status = message_reaches(&app, &survey, &sent, 0, 0, "sent").await;
    assert_eq!(status["kind"], "invitation");
    let all = status_of(&app, &survey, &sent).await;
    assert_eq!(
        messages_of(&all, 0),
        pairs(&[
            ("invitation", "sent"),
            ("reminder", "queued"),
            ("reminder", "cancelled")
        ])
    );
}
