//! The HTTPS listener (SPEC §9): HTTPS only with `HOOKD_TLS_CERT`/`HOOKD_TLS_KEY`, TLS 1.2
//! and 1.3, `Strict-Transport-Security`, `https://` invitation links, a start that names
//! the file it cannot use, and `SIGHUP` reloading the certificate while open connections
//! carry on.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::tls::{Leaf, client_trusting_clinic_ca, clinic_ca, server_pair};
use common::{
    KEY, free_port, hookd_binary, send_signal, spawn_app_with, start_error, test_args, wait_until,
};
use hookd::config::ServeArgs;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Test settings with the clinic CA's server certificate written into `dir`.
fn tls_args(dir: &std::path::Path) -> ServeArgs {
    let (cert, key) = server_pair().write(dir, "server");
    ServeArgs {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..test_args(dir)
    }
}

#[tokio::test]
async fn with_a_certificate_the_listener_speaks_https_only_and_links_are_https() {
    let dir = tempfile::tempdir().unwrap();
    let args = tls_args(dir.path());
    let app = spawn_app_with(args, Some(dir)).await;

    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let client = client_trusting_clinic_ca()
            .tls_version_min(version)
            .tls_version_max(version)
            .build()
            .unwrap();
        let status = client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{version:?}");
    }

    // No plain HTTP on that port: the bytes a browser sends to http://host:port get a TLS
    // alert at most, never an HTTP answer.
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // Invitation links default to https:// on the bound address.
    let survey = app.create_survey().await;
    let (status, contacts) = app
        .post(
            "/api/directory/contacts/upsert",
            json!({"contacts": [{"externalId": "HIS-1", "firstName": "Ada"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    let contact = contacts["items"][0]["contact"]["id"].as_str().unwrap();
    let (status, sent) = app
        .post(
            &format!("/api/surveys/{survey}/distributions/quick"),
            json!({"contactIds": [contact], "channel": "link"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let link = sent["invitations"][0]["url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("https://{}/r/", app.addr)),
        "{link}"
    );
    // The patient's page answers over HTTPS too, with HSTS.
    let page = app.client.get(link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_plain_http_server_sends_no_hsts_header() {
    let app = common::spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(!response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_start_with_an_unusable_certificate_or_key_stops_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = tls_args(dir.path());
    let cert = good.tls_cert.clone().unwrap();
    let key = good.tls_key.clone().unwrap();

    let missing = dir.path().join("missing.crt");
    let said = start_error(ServeArgs {
        tls_cert: Some(missing.clone()),
        ..tls_args(dir.path())
    })
    .await;
    assert!(
        said.contains("HOOKD_TLS_CERT") && said.contains(&missing.display().to_string()),
        "{said}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let said = start_error(ServeArgs {
        tls_cert: Some(garbage.clone()),
        ..tls_args(dir.path())
    })
    .await;
    assert!(
        said.contains("HOOKD_TLS_CERT") && said.contains("garbage.pem"),
        "{said}"
    );
    let said = start_error(ServeArgs {
        tls_key: Some(garbage),
        ..tls_args(dir.path())
    })
    .await;
    assert!(
        said.contains("HOOKD_TLS_KEY") && said.contains("garbage.pem"),
        "{said}"
    );

    // The key of another certificate.
    let (_, other_key) = clinic_ca().issue(Leaf::Server).write(dir.path(), "other");
    let said = start_error(ServeArgs {
        tls_cert: Some(cert),
        tls_key: Some(other_key),
        ..test_args(dir.path())
    })
    .await;
    assert!(
        said.contains("HOOKD_TLS_KEY") && said.contains("other.key") && said.contains("server.crt"),
        "{said}"
    );

    // One file without the other is a setting error, named.
    let half = ServeArgs {
        tls_key: Some(key),
        ..test_args(dir.path())
    };
    let said = half.into_config().unwrap_err().to_string();
    assert!(said.contains("HOOKD_TLS_CERT"), "{said}");
}

/// The DER of the certificate the server presented on `response`'s connection.
fn presented(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the TLS peer's certificate")
        .to_vec()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections_while_open_ones_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let first = clinic_ca().issue(Leaf::Server);
    let (cert, key) = first.write(dir.path(), "live");
    let port = free_port();
    let mut child = hookd_binary()
        .arg("serve")
        .env("HOOKD_DATA_DIR", dir.path().join("data"))
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKD_API_KEY", KEY)
        .env("HOOKD_TLS_CERT", &cert)
        .env("HOOKD_TLS_KEY", &key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let client = || client_trusting_clinic_ca().tls_info(true).build().unwrap();
    let open = client();
    wait_until("the server is up", Duration::from_secs(20), || async {
        open.get(&url).send().await.is_ok()
    })
    .await;
    let before = open.get(&url).send().await.unwrap();
    assert_eq!(presented(&before), first.cert_der());

    let second = clinic_ca().issue(Leaf::Server);
    second.write(dir.path(), "live");
    send_signal(&child, "HUP");
    wait_until(
        "new connections get the new certificate",
        Duration::from_secs(10),
        || async {
            let response = client().get(&url).send().await.unwrap();
            presented(&response) == second.cert_der()
        },
    )
    .await;
    // The connection opened before the reload is still open, with its certificate.
    let after = open.get(&url).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK);
    assert_eq!(presented(&after), first.cert_der(), "the same connection");

    // A broken pair is not taken: the server keeps the last good one.
    std::fs::write(&cert, "broken").unwrap();
    send_signal(&child, "HUP");
    let survived = client().get(&url).send().await.unwrap();
    assert_eq!(presented(&survived), second.cert_der());
    assert!(child.try_wait().unwrap().is_none(), "still running");
    // SIGTERM with an HTTP/2 connection still open: the server says GOAWAY and stops
    // once the client, which keeps running here, has acknowledged it.
    send_signal(&child, "TERM");
    let exited = tokio::task::spawn_blocking(move || child.wait().unwrap());
    assert!(exited.await.unwrap().success());
    drop(open);
}
