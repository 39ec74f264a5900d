//! Signed requests: both signature schemes, the exact stored body, a changed secret.

use serde_json::{Value, json};

use crate::common::{Receiver, spawn_app, wait_until};
use crate::{WAIT, delivery_detail};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Checks both signature schemes of a request, written from the spec, not from hookd's code.
pub fn verify(request: &crate::common::receiver::Recorded, secret: &str, all_secrets: &[&str]) {
    let body = &request.body;
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    );
    assert_eq!(request.header("x-webhook-signature").unwrap(), expected);
    let id = request.header("webhook-id").unwrap();
    assert_eq!(Some(&id), request.header("x-webhook-delivery").as_ref());
    let timestamp = request.header("webhook-timestamp").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 300);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let entries: Vec<String> = all_secrets
        .iter()
        .map(|s| {
            let key = match s.strip_prefix("whsec_") {
                Some(encoded) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap(),
                None => s.as_bytes().to_vec(),
            };
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed))
            )
        })
        .collect();
    assert_eq!(
        request.header("webhook-signature").unwrap(),
        entries.join(" ")
    );
}

#[tokio::test]
async fn requests_carry_both_signatures_the_headers_and_the_exact_stored_body() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let plain = "plain secret, with spaces — and ünïcode";
    let a = app
        .create_webhook(
            &survey,
            &receiver.url("/a"),
            json!({"secret": whsec, "headers": {"X-Clinic": "north"}}),
        )
        .await;
    let b = app
        .create_webhook(&survey, &receiver.url("/b"), json!({"secret": plain}))
        .await;
    let c = app
        .create_webhook(&survey, &receiver.url("/c"), json!({}))
        .await;
    app.complete_response(&survey, 4).await;
    wait_until("three requests", WAIT, || async { receiver.count() == 3 }).await;
    for request in receiver.requests() {
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(request.header("user-agent").unwrap().starts_with("hookd/"));
        assert_eq!(
            request.header("x-webhook-event").as_deref(),
            Some("survey.response_completed")
        );
        let (webhook, secret) = match request.path.as_str() {
            "/a" => (&a, Some(whsec)),
            "/b" => (&b, Some(plain)),
            _ => (&c, None),
        };
        let id = request.header("x-webhook-delivery").unwrap();
        let detail = delivery_detail(&app, &survey, webhook, &id).await;
        let stored: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            detail["payload"], stored,
            "the body sent is the stored payload"
        );
        match secret {
            Some(secret) => verify(&request, secret, &[secret]),
            None => assert!(
                request.header("x-webhook-signature").is_none()
                    && request.header("webhook-signature").is_none()
            ),
        }
        if request.path == "/a" {
            assert_eq!(request.header("x-clinic").as_deref(), Some("north"));
        }
    }
}

#[tokio::test]
async fn a_changed_secret_keeps_signing_beside_the_new_one() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    let old = "old-secret-0123456789";
    let new = "whsec_bmV3LXNlY3JldC0wMTIzNDU2Nzg5";
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({"secret": old}))
        .await;
    app.patch(
        &format!("/api/surveys/{survey}/webhooks/{webhook}"),
        json!({"secret": new}),
    )
    .await;
    app.complete_response(&survey, 5).await;
    wait_until("the request", WAIT, || async { receiver.count() == 1 }).await;
    verify(&receiver.requests()[0], new, &[new, old]);
}
