//! Time bounds on a request (SPEC §9): a connection whose headers or body do not arrive in
//! time is closed (the body's with a 408 first), and a handler never holds a request past
//! its bound (503 `timeout`). The bounds are shortened here; their defaults are 30 s and
//! 60 s.

mod common;

use std::time::{Duration, Instant};

use common::{Gate, KEY, Receiver, Reply, TestApp, spawn_app_with, test_args};
use hookd::config::ServeArgs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READ_BOUND_MS: u64 = 300;

async fn app_with_bounds(handler_ms: u64) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        request_read_timeout_ms: Some(READ_BOUND_MS),
        handler_timeout_ms: Some(handler_ms),
        delivery_timeout_ms: Some(20_000),
        ..test_args(dir.path())
    };
    spawn_app_with(args, Some(dir)).await
}

/// Writes `bytes` and reads until the server closes; returns what it sent and how long the
/// connection stayed open (bounded, so that a server that never closes fails the test).
async fn send_and_read_to_close(app: &TestApp, bytes: &[u8]) -> (String, Duration) {
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    if !bytes.is_empty() {
        socket.write_all(bytes).await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection")
        .unwrap();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_connection_that_does_not_finish_its_headers_is_closed() {
    let app = app_with_bounds(10_000).await;
    // Nothing at all, then half a header block.
    let (answer, _) = send_and_read_to_close(&app, b"").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    let (answer, open_for) =
        send_and_read_to_close(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        open_for >= Duration::from_millis(READ_BOUND_MS),
        "closed before its time"
    );
    // A complete request on a fresh connection is answered as usual.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed() {
    let app = app_with_bounds(10_000).await;
    let head = format!(
        "POST /api/surveys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\": "
    );
    let (answer, _) = send_and_read_to_close(&app, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
    let (_, surveys) = app.get("/api/surveys").await;
    assert_eq!(surveys["items"], json!([]), "nothing stored");
}

#[tokio::test]
async fn a_handler_that_takes_too_long_answers_503_timeout() {
    let app = app_with_bounds(500).await;
    let gate = Gate::new();
    let held = gate.clone();
    let receiver = Receiver::scripted(move |_, _| Reply::ok().held(&held)).await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    // A test send waits for the receiver, which holds it past the handler's bound.
    let (status, answer) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "timeout");
    gate.open();
    // The server is still well.
    let (status, _) = app.get("/api/surveys").await;
    assert_eq!(status, StatusCode::OK);
}
