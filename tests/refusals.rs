//! Refused requests are answered in full: many keep-alive clients send bodies that the
//! server refuses before (or instead of) reading them — a wrong key, an unknown route, a
//! body over the limit, bad JSON — and every one of them must get its whole answer, never
//! a reset or a closed connection in its place.

mod common;

use std::time::Duration;

use common::{KEY, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Concurrent clients, each on its own keep-alive connection.
const CLIENTS: usize = 24;
/// Requests each client sends, one after the other.
const ROUNDS: usize = 16;

/// One kind of refused request and the answer it must get.
struct Case {
    method: Method,
    path: &'static str,
    key: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

/// A JSON object of about `size` bytes (a string field padded out).
fn json_of(size: usize) -> Vec<u8> {
    format!(r#"{{"title": "{}", "questions": []}}"#, "x".repeat(size)).into_bytes()
}

fn cases() -> Vec<Case> {
    let case = |path, key, body, status, code| Case {
        method: Method::POST,
        path,
        key,
        body,
        status,
        code,
    };
    let wrong = "not-a-key-of-this-server";
    let mut bad_json = json_of(64 * 1024);
    bad_json.truncate(bad_json.len() - 1);
    vec![
        case(
            "/api/surveys",
            wrong,
            json_of(100),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        case(
            "/api/surveys",
            wrong,
            json_of(64 * 1024),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        case(
            "/api/surveys",
            wrong,
            json_of(1536 * 1024),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        case(
            "/api/surveys",
            KEY,
            json_of(1536 * 1024),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        case(
            "/api/surveys",
            KEY,
            bad_json,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        case(
            "/api/surveys",
            KEY,
            json_of(64 * 1024),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        case(
            "/api/no-such-thing",
            KEY,
            json_of(64 * 1024),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        case(
            "/no-such-page",
            wrong,
            json_of(100),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_refusal_reaches_its_client_in_full_on_busy_keep_alive_connections() {
    let app = spawn_app().await;
    let cases = std::sync::Arc::new(cases());
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (base, cases) = (app.base.clone(), cases.clone());
        clients.spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut failures = Vec::new();
            for round in 0..ROUNDS {
                let case = &cases[(client + round) % cases.len()];
                let sent = http
                    .request(case.method.clone(), format!("{base}{}", case.path))
                    .bearer_auth(case.key)
                    .header("content-type", "application/json")
                    .body(case.body.clone())
                    .send()
                    .await;
                let answer = match sent {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|body| (status, body))
                    }
                    Err(error) => Err(error),
                };
                match answer {
                    Ok((status, body)) => {
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if status != case.status || body["error"]["code"] != case.code {
                            failures.push(format!(
                                "{} {} ({} bytes): {status} {body}",
                                case.method,
                                case.path,
                                case.body.len()
                            ));
                        }
                    }
                    Err(error) => failures.push(format!(
                        "{} {} ({} bytes): no answer: {error:?}",
                        case.method,
                        case.path,
                        case.body.len()
                    )),
                }
            }
            failures
        });
    }
    let failures: Vec<String> = tokio::time::timeout(Duration::from_secs(120), clients.join_all())
        .await
        .expect("the clients finish in time")
        .into_iter()
        .flatten()
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests did not get their answer:\n{}",
        failures.len(),
        CLIENTS * ROUNDS,
        failures.join("\n")
    );
}

/// One HTTP/1.1 answer read off a raw connection: status line, headers, body.
struct Answer {
    head: String,
    body: Value,
}

impl Answer {
    fn status(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

async fn read_answer(stream: &mut tokio::net::TcpStream) -> Answer {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .expect("no reset under the answer");
        assert!(n > 0, "the connection closed before the answer's head");
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("answers here have a length");
    let mut body = bytes[end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .expect("no reset under the answer");
        assert!(n > 0, "the connection closed in the middle of the answer");
        body.extend_from_slice(&chunk[..n]);
    }
    Answer {
        head,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: hookd\r\nAuthorization: Bearer wrong-key\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn a_refused_body_is_read_out_so_its_connection_serves_the_next_request() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = json_of(256 * 1024);
    // The head first, then the body in pieces: the server refuses before it has the body.
    stream
        .write_all(post_head("/api/surveys", body.len(), "").as_bytes())
        .await
        .unwrap();
    for piece in body.chunks(16 * 1024) {
        stream.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    let refused = read_answer(&mut stream).await;
    assert_eq!(refused.status(), "401", "{}", refused.head);
    assert_eq!(refused.body["error"]["code"], "unauthorized");
    assert_eq!(refused.header("connection"), None, "{}", refused.head);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hookd\r\n\r\n")
        .await
        .unwrap();
    let next = read_answer(&mut stream).await;
    assert_eq!(next.status(), "200", "{}", next.head);
}

#[tokio::test]
async fn a_client_waiting_to_send_its_body_is_refused_without_being_asked_for_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = post_head("/api/surveys", 10 * 1024 * 1024, "Expect: 100-continue\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let refused = read_answer(&mut stream).await;
    assert_eq!(
        refused.status(),
        "401",
        "no 100 Continue first: {}",
        refused.head
    );
    assert_eq!(refused.body["error"]["code"], "unauthorized");
    assert_eq!(refused.header("connection"), Some("close"));
    // Then the connection ends cleanly (nothing was sent that could make it a reset).
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(read.expect("the server closes the connection").is_ok());
    assert!(rest.is_empty());
}
