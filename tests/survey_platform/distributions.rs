//! `POST /api/surveys/{id}/distributions/quick`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{bad_fields, contact, quick, survey_of_every_type, token};
use crate::common::{spawn_app, spawn_app_with, test_args};

#[tokio::test]
async fn a_quick_distribution_gives_each_contact_a_long_random_link() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let a = contact(&app, json!({"externalId": "A"})).await;
    let b = contact(&app, json!({"externalId": "B"})).await;
    let sent = quick(&app, &survey, &[&a, &b, &a], json!({"expiresInDays": 7})).await;
    assert!(sent["distributionId"].is_string());
    let invitations = sent["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 2, "a repeated contact gets one link");
    assert_eq!(invitations[0]["contactId"], json!(a));
    assert_eq!(invitations[1]["contactId"], json!(b));
    let first = token(&sent, 0);
    assert_ne!(first, token(&sent, 1));
    let random = URL_SAFE_NO_PAD
        .decode(&first)
        .expect("the token is base64url");
    assert!(random.len() * 8 >= 128, "{} random bits", random.len() * 8);
    assert_eq!(
        invitations[0]["url"],
        json!(format!("{}/r/{first}", app.base)),
        "without HOOKD_PUBLIC_URL the link names the address the server is bound to"
    );
    let expires = time::OffsetDateTime::parse(
        invitations[0]["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((6 * 24..=7 * 24).contains(&days), "{days} hours");

    // Only the token's hash is kept.
    let db = rusqlite::Connection::open(app.data_dir.join("hookd.db")).unwrap();
    let hashes: Vec<String> = db
        .prepare("SELECT token_hash FROM invitations")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!hashes.contains(&first));
    assert!(hashes.contains(&hex::encode(Sha256::digest(first.as_bytes()))));
}

#[tokio::test]
async fn invitation_links_start_with_the_configured_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.public_url = Some("https://survey.clinic.example/patients/".into());
    let app = spawn_app_with(args, Some(dir)).await;
    let survey = survey_of_every_type(&app).await;
    let a = contact(&app, json!({"externalId": "A"})).await;
    let sent = quick(&app, &survey, &[&a], json!({})).await;
    assert_eq!(
        sent["invitations"][0]["url"],
        json!(format!(
            "https://survey.clinic.example/patients/r/{}",
            token(&sent, 0)
        ))
    );
}

#[tokio::test]
async fn a_quick_distribution_to_unknown_contacts_is_refused_naming_them() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let known = contact(&app, json!({"externalId": "A"})).await;
    let ghost = "0190f7a8-0000-7000-8000-00000000abcd";
    let (status, body) = app
        .post(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": [known, ghost], "channel": "link"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_fields(&body), ["contactIds[1]"]);
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains(ghost)
    );
    let db = rusqlite::Connection::open(app.data_dir.join("hookd.db")).unwrap();
    let written: i64 = db
        .query_row("SELECT count(*) FROM invitations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(written, 0);
}

#[tokio::test]
async fn email_and_sms_channels_are_refused_until_a_gateway_is_configured() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let a = contact(&app, json!({"externalId": "A", "email": "a@example.org"})).await;
    for channel in ["email", "sms", "pigeon"] {
        let (status, body) = app
            .post(
                &format!("/api/surveys/{survey}/distributions/quick"),
                json!({"contactIds": [a], "channel": channel}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{channel}");
        assert_eq!(bad_fields(&body), ["channel"]);
    }
}

#[tokio::test]
async fn a_quick_distribution_checks_its_limits() {
    let app = spawn_app().await;
    let survey = survey_of_every_type(&app).await;
    let a = contact(&app, json!({"externalId": "A"})).await;
    let path = format!("/api/surveys/{survey}/distributions/quick");
    let many: Vec<String> = (0..1001).map(|_| a.clone()).collect();
    for (body, field) in [
        (json!({"contactIds": [], "channel": "link"}), "contactIds"),
        (json!({"contactIds": many, "channel": "link"}), "contactIds"),
        (
            json!({"contactIds": ["not-an-id"], "channel": "link"}),
            "contactIds",
        ),
        (
            json!({"contactIds": [a], "channel": "link", "expiresInDays": 0}),
            "expiresInDays",
        ),
        (
            json!({"contactIds": [a], "channel": "link", "expiresInDays": 366}),
            "expiresInDays",
        ),
        (
            json!({"contactIds": [a], "channel": "link", "embeddedData": [1]}),
            "embeddedData",
        ),
        (json!({"contactIds": [a]}), "channel"),
    ] {
        let (status, answer) = app.post(&path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(bad_fields(&answer), [field]);
    }
    let (status, _) = app
        .post(
            "/api/surveys/0190f7a8-0000-7000-8000-000000000000/distributions/quick",
            json!({"contactIds": [a], "channel": "link"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .client
        .post(app.url(&path))
        .json(&json!({"contactIds": [a], "channel": "link"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "needs an API key");
}
