//! SMS (SPEC §10): the gateway's request, its refusals, and the client rules it shares
//! with webhooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{
    app_with_channels, contact, distribute, message_once, message_reaches, try_distribute,
};
use crate::common::{Receiver, Reply, spawn_app_with, test_args};

const TOKEN: &str = "gateway-token-0123456789";

#[tokio::test]
async fn an_sms_goes_to_the_gateway_as_json_with_its_token_and_the_message_id_as_idempotency_key() {
    let gateway = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.sms_url = Some(gateway.url("/v1/sms"));
    args.sms_token = Some(TOKEN.into());
    args.message_rate_limit = Some(0);
    let app = spawn_app_with(args, Some(dir)).await;
    let survey = app.create_survey_of_every_type("Your stay").await;
    let ada = contact(
        &app,
        json!({"phone": "+41 79 123 45 67", "firstName": "Ada"}),
    )
    .await;
    let sent = distribute(
        &app,
        &survey,
        &[&ada],
        "sms",
        json!({"message": {"text": "Hi {{firstName}} <3, {{surveyTitle}}: {{link}}"}}),
    )
    .await;
    assert_eq!(sent["invitations"][0]["messageStatus"], "queued");
    let link = sent["invitations"][0]["url"].as_str().unwrap();
    let status = message_reaches(&app, &survey, &sent, 0, 0, "sent").await;

    let requests = gateway.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/sms");
    assert_eq!(
        request.json(),
        json!({"to": "+41791234567", "text": format!("Hi Ada <3, Your stay: {link}")}),
        "text is not escaped: only html is"
    );
    assert_eq!(
        request.header("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
    assert_eq!(
        request.header("idempotency-key").unwrap(),
        status["id"].as_str().unwrap()
    );
    assert_eq!(request.header("content-type").unwrap(), "application/json");
    assert!(
        request.header("x-webhook-signature").is_none()
            && request.header("x-webhook-event").is_none(),
        "a gateway gets no webhook headers"
    );
}

#[tokio::test]
async fn a_gateway_4xx_fails_at_once_and_a_429_is_tried_again() {
    let gateway = Receiver::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    gateway.set_script(move |request, _| {
        let to = request.json()["to"].as_str().unwrap_or("").to_owned();
        match to.as_str() {
            "+41790000001" => Reply::status(400).body("unknown number"),
            _ if seen.fetch_add(1, Ordering::SeqCst) == 0 => {
                Reply::status(429).header("retry-after", "1")
            }
            _ => Reply::ok(),
        }
    });
    let app = app_with_channels(None, Some(gateway.url("/sms"))).await;
    let survey = app.create_survey().await;
    let bad = contact(&app, json!({"phone": "+41790000001"})).await;
    let good = contact(&app, json!({"phone": "+41790000002"})).await;
    let sent = distribute(&app, &survey, &[&bad, &good], "sms", json!({})).await;
    let failed = message_reaches(&app, &survey, &sent, 0, 0, "failed").await;
    assert_eq!(failed["attempts"], 1, "a 4xx other than 429 is not retried");
    let delivered = message_reaches(&app, &survey, &sent, 1, 0, "sent").await;
    assert_eq!(delivered["attempts"], 2, "the 429 was tried again");
}

#[tokio::test]
async fn the_sms_gateway_url_follows_the_webhook_rules_for_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.allow_networks = None;
    args.sms_url = Some("http://127.0.0.1:9/sms".into());
    let error = args.into_config().unwrap_err().to_string();
    assert!(error.contains("HOOKD_SMS_URL"), "{error}");
    assert!(
        error.contains("loopback") || error.contains("127.0.0.1"),
        "{error}"
    );
}

#[tokio::test]
async fn without_a_gateway_the_sms_channel_is_refused() {
    let app = app_with_channels(None, None).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"phone": "+41790000003"})).await;
    let (status, body) = try_distribute(&app, &survey, &[&ada], "sms", json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "channel");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HOOKD_SMS_URL")
    );
}

#[tokio::test]
async fn hookd_message_rate_limit_paces_the_channel() {
    const RATE: u32 = 4;
    let gateway = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.sms_url = Some(gateway.url("/sms"));
    args.message_rate_limit = Some(RATE);
    let app = spawn_app_with(args, Some(dir)).await;
    let survey = app.create_survey().await;
    let mut contacts = Vec::new();
    for i in 0..6 {
        contacts.push(contact(&app, json!({"phone": format!("+4179000010{i}")})).await);
    }
    let ids: Vec<&str> = contacts.iter().map(String::as_str).collect();
    distribute(&app, &survey, &ids, "sms", json!({})).await;
    crate::common::wait_until(
        "every SMS sent",
        std::time::Duration::from_secs(20),
        || async { gateway.count() == 6 },
    )
    .await;
    // A pace is a lower bound, so this cannot fail by slowness: one send per 1/RATE s.
    let mut at: Vec<_> = gateway.requests().iter().map(|r| r.at).collect();
    at.sort();
    let span = at[5] - at[0];
    assert!(
        span >= std::time::Duration::from_millis(5 * 1000 / u64::from(RATE) - 50),
        "6 messages at {RATE}/s took {span:?}"
    );
}

/// Polls the distribution until message `0/0` has had `attempts` attempts; answers it.
async fn after_attempts(
    app: &crate::common::TestApp,
    survey: &str,
    sent: &serde_json::Value,
    attempts: u64,
) -> serde_json::Value {
    let what = format!("{attempts} attempts");
    message_once(app, survey, sent, 0, 0, &what, |message| {
        message["attempts"].as_u64() >= Some(attempts)
    })
    .await
}

#[tokio::test]
async fn a_gateway_redirect_or_hang_is_a_failed_attempt_tried_again() {
    // The gateway rides the webhook client: a redirect is not followed, and an answer later
    // than the delivery timeout (2 s in tests) is cut off; both are failed attempts.
    let gateway = Receiver::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    gateway.set_script(move |request, _| {
        if request.path != "/sms" {
            return Reply::ok();
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(302).header("location", "/elsewhere"),
            1 => Reply::ok().after(Duration::from_secs(4)),
            _ => Reply::ok(),
        }
    });
    let app = app_with_channels(None, Some(gateway.url("/sms"))).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"phone": "+41790000003"})).await;
    let sent = distribute(&app, &survey, &[&ada], "sms", json!({})).await;

    let redirected = after_attempts(&app, &survey, &sent, 1).await;
    assert_eq!(redirected["status"], "queued", "{redirected}");
    assert!(
        redirected["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("302"),
        "{redirected}"
    );
    let hung = after_attempts(&app, &survey, &sent, 2).await;
    assert_eq!(hung["status"], "queued", "{hung}");
    assert!(
        hung["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("timed out"),
        "{hung}"
    );
    let delivered = message_reaches(&app, &survey, &sent, 0, 0, "sent").await;
    assert_eq!(delivered["attempts"], 3);
    let paths: Vec<String> = gateway.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/sms", "/sms", "/sms"],
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_gateway_host_that_resolves_to_a_refused_address_is_blocked_at_connect_time() {
    let gateway = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    args.allow_networks = None;
    args.allow_hosts = Some("localhost".into());
    args.sms_url = Some(format!("http://localhost:{}/sms", gateway.addr.port()));
    args.message_rate_limit = Some(0);
    let app = spawn_app_with(args, Some(dir)).await;
    let survey = app.create_survey().await;
    let ada = contact(&app, json!({"phone": "+41790000004"})).await;
    let sent = distribute(&app, &survey, &[&ada], "sms", json!({})).await;
    let refused = after_attempts(&app, &survey, &sent, 1).await;
    assert_eq!(refused["status"], "queued", "tried again later: {refused}");
    assert!(
        refused["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("no permitted address"),
        "{refused}"
    );
    assert_eq!(gateway.count(), 0, "nothing reached the loopback gateway");
}
