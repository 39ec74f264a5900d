//! The seed's integration pattern, the way a HIS runs it: upsert contacts, quick-send a
//! survey, register a webhook, receive the signed callbacks, poll bulk status.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;

use super::{answer, show, survey_of_every_type};
use crate::common::receiver::Recorded;
use crate::common::{Receiver, spawn_app, wait_until};

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).unwrap()
}

/// `X-Webhook-Signature: sha256=<hex HMAC(secret's UTF-8 bytes, raw body)>`.
fn legacy_signature_holds(secret: &str, request: &Recorded) -> bool {
    let header = request.header("x-webhook-signature").unwrap();
    let tag = hex::decode(header.strip_prefix("sha256=").unwrap()).unwrap();
    let mut mac = mac(secret.as_bytes());
    mac.update(&request.body);
    mac.verify_slice(&tag).is_ok()
}

/// Standard Webhooks: `webhook-signature: v1,<base64 HMAC(key, "{id}.{timestamp}.{body}")>`
/// where key is the base64 after `whsec_`; any of the space-separated entries may match.
fn standard_signature_holds(secret: &str, request: &Recorded) -> bool {
    let id = request.header("webhook-id").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(age.abs() < 300, "the timestamp is current");
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = mac(&key);
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    request
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|entry| entry == expected)
}

#[tokio::test]
async fn the_whole_integration_pattern_runs_against_a_real_receiver() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let secret = format!("whsec_{}", STANDARD.encode(b"the clinic's shared key!"));

    // 1. Upsert the patients of the day.
    let (status, upserted) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"contacts": [
                {"externalId": "HIS-1", "email": "ada@example.org", "firstName": "Ada"},
                {"externalId": "HIS-2", "phone": "+41 79 000 00 02"},
                {"externalId": "HIS-3", "email": "carl@example.org"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{upserted}");
    let ids: Vec<String> = upserted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["contact"]["id"].as_str().unwrap().to_owned())
        .collect();

    // 2. Quick-send the survey to the first two.
    let survey = survey_of_every_type(&app).await;
    let (status, sent) = app
        .post(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": [ids[0], ids[1]], "channel": "link", "expiresInDays": 14,
                   "embeddedData": {"visitId": "V-100"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let ada_token = sent["invitations"][0]["token"].as_str().unwrap().to_owned();

    // 3. Register the HIS's webhook.
    app.create_webhook(
        &survey,
        &receiver.url("/his/callback"),
        json!({"secret": secret, "events": ["survey.response_started", "survey.response_completed"]}),
    )
    .await;

    // The patient opens the link, saves part of it, then completes it.
    let (status, form) = show(&app, &ada_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(form["survey"]["id"], json!(survey));
    let (status, _) = answer(
        &app,
        &ada_token,
        json!({"answers": {"ward": {"choiceIds": ["south"]}}, "complete": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, done) = answer(
        &app,
        &ada_token,
        json!({"answers": {"stars": {"value": 5}, "topics": {"choiceIds": ["food", "care"]},
                           "nps": {"value": 10}, "note": {"value": "Thank you, nurses!"}},
               "complete": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");

    // 4. The HIS receives both callbacks, signed both ways.
    wait_until(
        "the receiver got both events",
        Duration::from_secs(10),
        || async { receiver.count() >= 2 },
    )
    .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.path, "/his/callback");
        assert!(
            legacy_signature_holds(&secret, request),
            "X-Webhook-Signature"
        );
        assert!(
            standard_signature_holds(&secret, request),
            "webhook-signature"
        );
        assert_eq!(
            request.header("webhook-id"),
            request.header("x-webhook-delivery")
        );
        assert_eq!(
            request.header("x-webhook-event").unwrap(),
            request.json()["eventType"].as_str().unwrap()
        );
    }
    let events: Vec<_> = requests.iter().map(Recorded::json).collect();
    let started = events
        .iter()
        .find(|e| e["eventType"] == "survey.response_started")
        .unwrap();
    let completed = events
        .iter()
        .find(|e| e["eventType"] == "survey.response_completed")
        .unwrap();
    assert_eq!(started["data"]["contactId"], json!(ids[0]));
    assert_eq!(started["data"]["responseId"], done["responseId"]);
    assert_eq!(completed["surveyId"], json!(survey));
    assert_eq!(completed["data"]["contactId"], json!(ids[0]));
    assert_eq!(completed["data"]["responseId"], done["responseId"]);
    assert_eq!(completed["data"]["embeddedData"]["visitId"], "V-100");
    assert_eq!(
        completed["data"]["answers"],
        json!({"ward": {"choiceIds": ["south"]}, "stars": {"value": 5},
               "topics": {"choiceIds": ["food", "care"]}, "nps": {"value": 10},
               "note": {"value": "Thank you, nurses!"}})
    );

    // 5. Bulk status tells who still has to answer.
    let (status, report) = app
        .post(
            &format!("/api/surveys/{survey}/responses/bulk-status"),
            json!({"contactIds": ids}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<_> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["contactId"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (ids[0].clone(), "completed".to_owned()),
            (ids[1].clone(), "invited".to_owned()),
            (ids[2].clone(), "not_invited".to_owned()),
        ]
    );
    assert_eq!(report["items"][0]["responseId"], done["responseId"]);
}
