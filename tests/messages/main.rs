//! Invitations and notices that are sent (SPEC §10), against the real server, a real SMTP
//! server on loopback (aiosmtpd) and the test receiver as the SMS gateway.

#[path = "../common/mod.rs"]
mod common;

mod email;
mod notices;
mod reminders;
mod sms;
mod validation;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{SmtpServer, SmtpTls, TestApp, bad_fields, spawn_app_with, test_args};

/// A server that sends email through `smtp` (no rate limit) and, if given, SMS through
/// `sms_url`.
async fn app_with_channels(smtp: Option<&SmtpServer>, sms_url: Option<String>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut args = test_args(dir.path());
    if let Some(smtp) = smtp {
        args.smtp_url = Some(smtp.url());
        args.smtp_from = Some("Clinic Surveys <surveys@clinic.example>".into());
    }
    args.sms_url = sms_url;
    args.message_rate_limit = Some(0);
    spawn_app_with(args, Some(dir)).await
}

/// A plain-SMTP server that accepts everything.
fn smtp() -> SmtpServer {
    SmtpServer::start(SmtpTls::None)
}

/// Upserts one contact and returns its id.
async fn contact(app: &TestApp, body: Value) -> String {
    let (status, answer) = app.post("/api/directory/contacts/upsert", body).await;
    assert!(status.is_success(), "{status} {answer}");
    answer["contact"]["id"].as_str().unwrap().to_owned()
}

/// Sends `survey` to `contacts` by `channel`, with `extra` fields; the 201 answer.
async fn distribute(
    app: &TestApp,
    survey: &str,
    contacts: &[&str],
    channel: &str,
    extra: Value,
) -> Value {
    let (status, answer) = try_distribute(app, survey, contacts, channel, extra).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

async fn try_distribute(
    app: &TestApp,
    survey: &str,
    contacts: &[&str],
    channel: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"contactIds": contacts, "channel": channel});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    app.post(&format!("/api/surveys/{survey}/distributions/quick"), body)
        .await
}

/// The distribution's status (`GET .../distributions/{id}`).
async fn status_of(app: &TestApp, survey: &str, distribution: &Value) -> Value {
    let id = distribution["distributionId"].as_str().unwrap();
    let (status, body) = app
        .get(&format!("/api/surveys/{survey}/distributions/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until message `m` of invitation `i` has `status`; returns it.
async fn message_reaches(
    app: &TestApp,
    survey: &str,
    distribution: &Value,
    i: usize,
    m: usize,
    status: &str,
) -> Value {
    message_once(app, survey, distribution, i, m, status, |last| {
        last["status"] == status
    })
    .await
}

/// Polls the distribution until message `m` of invitation `i` is as `done` wants (`what`
/// names it for the failure); answers the message.
async fn message_once(
    app: &TestApp,
    survey: &str,
    distribution: &Value,
    i: usize,
    m: usize,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let limit = Duration::from_secs(30);
    let started = std::time::Instant::now();
    loop {
        let body = status_of(app, survey, distribution).await;
        let last = body["invitations"][i]["messages"][m].clone();
        if done(&last) {
            return last;
        }
        assert!(
            started.elapsed() < limit,
            "message {i}/{m} never became {what}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
