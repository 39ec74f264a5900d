//! Logs: `--log-format json` gives one JSON object per line for collectors, and no log line
//! carries a payload, an answer, a receiver's body, a secret or the API key.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{KEY, Receiver, Reply, free_port, wait_until};
use serde_json::{Value, json};

const ANSWER: &str = "answer-text-that-must-stay-private";
const SECRET: &str = "webhook-secret-that-must-stay-private";
const RECEIVER_BODY: &str = "receiver-body-that-must-stay-private";
const EMAIL: &str = "patient.address@private.example";
const REJECTED_EMAIL: &str = "reject.patient@private.example";
const PHONE: &str = "+41799998877";
const FIRST_NAME: &str = "PrivateFirstName";
const MESSAGE_TEXT: &str = "message-text-that-must-stay-private";
const SMS_TOKEN: &str = "sms-token-that-must-stay-private";

/// Stops the server as a service manager would (SIGTERM) and waits for it to exit.
fn terminate(mut child: Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_never_carry_answers_or_secrets() {
    let smtp = common::SmtpServer::start(common::SmtpTls::None);
    let gateway = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let port = free_port();
    let child = common::hookd_binary()
        .args(["serve", "--log-format", "json", "--allow-http"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--api-key", KEY, "--allow-networks", "127.0.0.0/8"])
        .args(["--host-rate-limit", "0", "--message-rate-limit", "0"])
        .args([
            "--smtp-url",
            &smtp.url(),
            "--smtp-from",
            "surveys@clinic.example",
        ])
        .args(["--sms-url", &gateway.url("/sms"), "--sms-token", SMS_TOKEN])
        .env("RUST_LOG", "info,hookd=debug,tower_http=debug")
        .env_remove("HOOKD_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until("the server is ready", Duration::from_secs(20), || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let call = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };

    let receiver = Receiver::scripted(|r, _| {
        if r.path == "/bad" {
            Reply::status(500).body(RECEIVER_BODY)
        } else {
            Reply::ok()
        }
    })
    .await;
    let survey: Value = call(
        "/api/surveys",
        json!({"title": "Stay", "questions": [{"id": "note", "type": "text", "text": "Tell us"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let survey = survey["id"].as_str().unwrap();
    for (path, policy) in [("/ok", json!([1])), ("/bad", json!([]))] {
        let created = call(
            &format!("/api/surveys/{survey}/webhooks"),
            json!({"name": "HIS", "url": receiver.url(path), "events": ["survey.response_completed"],
                   "secret": SECRET, "retryPolicy": policy}),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), 201);
    }
    let answered = call(
        &format!("/api/surveys/{survey}/responses"),
        json!({"answers": {"note": {"value": ANSWER}}}),
    )
    .await
    .unwrap();
    assert_eq!(answered.status(), 201);
    // A rejected answer too: its validation error must not echo the value into the logs.
    let rejected = call(
        &format!("/api/surveys/{survey}/responses"),
        json!({"answers": {"unknown": {"value": ANSWER}}}),
    )
    .await
    .unwrap();
    assert_eq!(rejected.status(), 422);
    wait_until(
        "both webhooks got the event",
        Duration::from_secs(15),
        || async { receiver.count() == 2 },
    )
    .await;

    // Messages: an email accepted, one rejected for good, an SMS; none may show who or what.
    let mut contacts = Vec::new();
    for body in [
        json!({"email": EMAIL, "phone": PHONE, "firstName": FIRST_NAME}),
        json!({"email": REJECTED_EMAIL, "firstName": FIRST_NAME}),
    ] {
        let upserted: Value = call("/api/directory/contacts/upsert", body)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        contacts.push(upserted["contact"]["id"].as_str().unwrap().to_owned());
    }
    let text = format!("{MESSAGE_TEXT} {{{{firstName}}}} {{{{link}}}}");
    for (channel, to) in [("email", &contacts[..]), ("sms", &contacts[..1])] {
        let sent = call(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": to, "channel": channel, "message": {"text": text}}),
        )
        .await
        .unwrap();
        assert_eq!(sent.status(), 201);
    }
    smtp.wait_for(1).await;
    wait_until(
        "the gateway got the SMS",
        Duration::from_secs(15),
        || async { gateway.count() == 1 },
    )
    .await;
    let db = dir.path().join("data").join("hookd.db");
    wait_until("the rejection is recorded", Duration::from_secs(15), || async {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'failed' AND event_type = 'message.email'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    })
    .await;
    tokio::task::spawn_blocking(move || terminate(child))
        .await
        .unwrap();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{logs}");
    for line in &lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
    }
    let messages: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_owned))
        .collect();
    for expected in ["hookd is serving", "stopped"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no `{expected}` in\n{logs}"
        );
    }
    let private_messages = [
        EMAIL,
        REJECTED_EMAIL,
        PHONE,
        &PHONE[1..],
        FIRST_NAME,
        MESSAGE_TEXT,
        SMS_TOKEN,
    ];
    for private in [ANSWER, SECRET, RECEIVER_BODY, KEY]
        .iter()
        .chain(&private_messages)
    {
        assert!(
            !logs.contains(private),
            "`{private}` appears in the logs:\n{logs}"
        );
    }
}
