//! TLS to webhook targets (SPEC §9): a receiver behind the clinic's own CA is reached with
//! `HOOKD_CA_FILE`; one that requires a client certificate gets `HOOKD_CLIENT_CERT`; every
//! TLS failure is a failed attempt whose `lastError` says why; files that cannot be used
//! stop the start, named.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tls::{Leaf, Pair, clinic_ca, receiver_config, server_pair, stranger_ca};
use common::{Receiver, TestApp, spawn_app_with, start_error, test_args};
use hookd::config::ServeArgs;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A server trusting the clinic's CA, perhaps presenting a client certificate.
async fn app(client: Option<&Pair>, trust_clinic_ca: bool) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    if trust_clinic_ca {
        let ca = dir.path().join("clinic-ca.pem");
        std::fs::write(&ca, &clinic_ca().cert_pem).unwrap();
        args.ca_file = Some(ca);
    }
    if let Some(pair) = client {
        let (cert, key) = pair.write(dir.path(), "client");
        args.client_cert = Some(cert);
        args.client_key = Some(key);
    }
    spawn_app_with(args, Some(dir)).await
}

/// Sends a `webhook.test` to `receiver` and answers its one attempt.
async fn test_send(app: &TestApp, receiver: &Receiver) -> Value {
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(&survey, &receiver.url("/hook"), json!({}))
        .await;
    let (status, detail) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    detail["attempts"][0].clone()
}

fn error_of(attempt: &Value) -> String {
    attempt["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_receiver_behind_the_clinic_ca_is_reached_once_the_ca_is_trusted() {
    let receiver = Receiver::tls(receiver_config(server_pair(), None)).await;

    let trusting = app(None, true).await;
    let attempt = test_send(&trusting, &receiver).await;
    assert_eq!(attempt["statusCode"], 200, "{attempt}");
    assert_eq!(receiver.count(), 1);

    let untrusting = app(None, false).await;
    let attempt = test_send(&untrusting, &receiver).await;
    assert_eq!(attempt["statusCode"], Value::Null);
    let error = error_of(&attempt);
    assert!(
        error.starts_with("TLS: ") && error.contains("unknown issuer"),
        "{error}"
    );
    assert_eq!(receiver.count(), 1, "nothing was sent without trust");
}

#[tokio::test]
async fn tls_failures_say_why_in_last_error() {
    let app = app(None, true).await;
    let cases = [
        (clinic_ca().issue(Leaf::OtherName), "name mismatch"),
        (clinic_ca().issue(Leaf::ExpiredServer), "expired"),
        (stranger_ca().issue(Leaf::Server), "unknown issuer"),
    ];
    for (pair, why) in cases {
        let receiver = Receiver::tls(receiver_config(&pair, None)).await;
        let attempt = test_send(&app, &receiver).await;
        let error = error_of(&attempt);
        assert!(error.contains(why), "{why}: {error}");
        // The scheduled deliveries' view says the same.
        assert_eq!(receiver.count(), 0);
    }
}

#[tokio::test]
async fn a_receiver_that_requires_a_client_certificate_gets_hookds() {
    let receiver = Receiver::tls(receiver_config(server_pair(), Some(clinic_ca()))).await;

    let without = app(None, true).await;
    let attempt = test_send(&without, &receiver).await;
    let error = error_of(&attempt);
    assert!(error.contains("client certificate"), "{error}");

    let stranger = app(Some(&stranger_ca().issue(Leaf::Client)), true).await;
    let attempt = test_send(&stranger, &receiver).await;
    let error = error_of(&attempt);
    assert!(error.contains("client certificate"), "{error}");
    assert_eq!(receiver.count(), 0);

    let with = app(Some(&clinic_ca().issue(Leaf::Client)), true).await;
    let attempt = test_send(&with, &receiver).await;
    assert_eq!(attempt["statusCode"], 200, "{attempt}");
    assert_eq!(receiver.count(), 1);

    // Scheduled deliveries go the same way, and record the same words.
    let survey = without.create_survey().await;
    let webhook = without
        .create_webhook(&survey, &receiver.url("/hook"), json!({"retryPolicy": []}))
        .await;
    without.complete_response(&survey, 4).await;
    common::wait_until("the delivery failed", Duration::from_secs(10), || async {
        without.count_with_status(&survey, &webhook, "failed").await == 1
    })
    .await;
    let delivery = &without.deliveries(&survey, &webhook).await[0];
    let error = delivery["lastError"].as_str().unwrap();
    assert!(error.contains("client certificate"), "{error}");
}

fn with_files(dir: &Path, ca: Option<&str>, client: Option<(&str, &str)>) -> ServeArgs {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut args = test_args(dir);
    args.ca_file = ca.map(|text| write("ca.pem", text));
    if let Some((cert, key)) = client {
        args.client_cert = Some(write("client.crt", cert));
        args.client_key = Some(write("client.key", key));
    }
    args
}

#[tokio::test]
async fn unusable_trust_or_client_files_stop_the_start_named() {
    let dir = tempfile::tempdir().unwrap();
    let said = start_error(with_files(dir.path(), Some("not a certificate"), None)).await;
    assert!(
        said.contains("HOOKD_CA_FILE") && said.contains("ca.pem"),
        "{said}"
    );

    let mut missing = test_args(dir.path());
    missing.ca_file = Some(dir.path().join("nowhere.pem"));
    let said = start_error(missing).await;
    assert!(
        said.contains("HOOKD_CA_FILE") && said.contains("nowhere.pem"),
        "{said}"
    );

    let client = clinic_ca().issue(Leaf::Client);
    let other = clinic_ca().issue(Leaf::Client);
    let said = start_error(with_files(
        dir.path(),
        None,
        Some((&client.cert_pem, &other.key_pem)),
    ))
    .await;
    assert!(
        said.contains("HOOKD_CLIENT_KEY") && said.contains("HOOKD_CLIENT_CERT"),
        "{said}"
    );

    let said = start_error(with_files(
        dir.path(),
        None,
        Some((&client.cert_pem, "junk")),
    ))
    .await;
    assert!(
        said.contains("HOOKD_CLIENT_KEY") && said.contains("client.key"),
        "{said}"
    );

    let mut half = test_args(dir.path());
    half.client_cert = Some(dir.path().join("client.crt"));
    let said = half.into_config().unwrap_err().to_string();
    assert!(said.contains("HOOKD_CLIENT_KEY"), "{said}");
}
