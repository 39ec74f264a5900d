//! API keys (SPEC §1, §7): the bootstrap key, `hookd keys create|list|revoke`, hashed
//! storage, 401 for revoked keys, and the audit log of admin actions.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{hookd_binary, wait_until};
use hookd::domain::KeyId;
use reqwest::StatusCode;
use rusqlite::Connection;

fn keys(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    hookd_binary()
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("HOOKD_API_KEY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn created_keys_authenticate_until_revoked_and_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    // `hookd keys` works on an existing database (a first start creates it), beside the
    // running server.
    let mut args = common::test_args(dir.path());
    args.api_key = None;
    let app = common::spawn_app_with(args, None).await;
    let created = keys(dir.path(), &["create", "--name", "his-integration"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("hkd_") && key.len() > 60, "{key}");

    let listed = String::from_utf8(keys(dir.path(), &["list"]).stdout).unwrap();
    assert!(listed.contains("his-integration"));
    assert!(!listed.contains(&key), "the list never shows a key");
    let conn = Connection::open(dir.path().join("hookd.db")).unwrap();
    let stored: String = conn
        .query_row("SELECT group_concat(key_hash) FROM api_keys", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!stored.contains(&key[4..]), "only a hash is stored");
    let get = |key: String| {
        let request = app.client.get(app.url("/api/surveys")).bearer_auth(key);
        async move { request.send().await.unwrap().status() }
    };
    // The server checks keys from memory and reloads them within a quarter of a second
    // of a change.
    wait_until("the new key works", Duration::from_secs(5), || {
        let get = get(key.clone());
        async move { get.await == StatusCode::OK }
    })
    .await;
    let id = conn
        .query_row(
            "SELECT id FROM api_keys WHERE name = 'his-integration'",
            [],
            |r| r.get::<_, KeyId>(0),
        )
        .unwrap()
        .to_string();
    assert!(keys(dir.path(), &["revoke", &id]).status.success());
    wait_until(
        "revocation takes effect on the running server",
        Duration::from_secs(5),
        || {
            let get = get(key.clone());
            async move { get.await == StatusCode::UNAUTHORIZED }
        },
    )
    .await;
    let unknown = keys(
        dir.path(),
        &["revoke", "01234567-89ab-7def-8123-456789abcdef"],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no key"));
    let actions: String = conn
        .query_row(
            "SELECT group_concat(action || ':' || key_id) FROM audit_log",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        actions.contains("key.created:cli") && actions.contains("key.revoked:cli"),
        "{actions}"
    );
}

#[tokio::test]
async fn the_first_start_prints_a_bootstrap_key_once_and_it_works() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = hookd_binary()
        .arg("serve")
        .env("HOOKD_DATA_DIR", dir.path())
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("HOOKD_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut key = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(found) = line.split_whitespace().find(|w| w.starts_with("hkd_")) {
            key = found.to_owned();
            break;
        }
    }
    assert!(!key.is_empty(), "a bootstrap key is printed");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/surveys");
    wait_until("the key works", Duration::from_secs(10), || async {
        client
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    common::send_signal(&child, "TERM");
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");
    let conn = Connection::open(dir.path().join("hookd.db")).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 1);
    // Its creation is audited, by the server itself, naming the key (never its secret).
    let (action, actor, target, detail): (String, String, String, String) = conn
        .query_row(
            "SELECT action, key_id, target_id, detail FROM audit_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let key_id = conn
        .query_row("SELECT id FROM api_keys", [], |r| r.get::<_, KeyId>(0))
        .unwrap()
        .to_string();
    assert_eq!((action.as_str(), actor.as_str()), ("key.created", "hookd"));
    assert_eq!(target, key_id);
    assert!(!detail.contains(&key), "{detail}");
}

#[tokio::test]
async fn admin_actions_are_audited_with_the_key_that_did_them() {
    let app = common::spawn_app().await;
    let survey = app.create_survey().await;
    let webhook = app
        .create_webhook(
            &survey,
            "https://his.example.com/hook",
            serde_json::json!({}),
        )
        .await;
    app.patch(
        &format!("/api/surveys/{survey}/webhooks/{webhook}"),
        serde_json::json!({"secret": "0123456789abcdef0123"}),
    )
    .await;
    app.delete(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
        .await;
    let conn = Connection::open(app.data_dir.join("hookd.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT action, key_id, target_id, detail FROM audit_log ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        actions,
        ["webhook.created", "webhook.updated", "webhook.deleted"]
    );
    assert!(rows.iter().all(|r| r.1 == "env" && r.2 == webhook));
    assert!(
        rows.iter().all(|r| !r.3.contains("0123456789abcdef0123")),
        "no secret in the audit detail"
    );
}

#[tokio::test]
async fn a_test_send_is_audited_with_the_key_that_asked_and_its_outcome() {
    let app = common::spawn_app().await;
    let receiver = common::Receiver::scripted(|_, _| common::Reply::status(503)).await;
    let (survey, webhook) = app
        .survey_with_webhook(&receiver, serde_json::json!({}))
        .await;
    let (status, detail) = app
        .post(
            &format!("/api/surveys/{survey}/webhooks/{webhook}/test"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let conn = Connection::open(app.data_dir.join("hookd.db")).unwrap();
    let (actor, target, audited): (String, String, String) = conn
        .query_row(
            "SELECT key_id, target_id, detail FROM audit_log WHERE action = 'webhook.tested'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((actor.as_str(), target.as_str()), ("env", webhook.as_str()));
    let audited: serde_json::Value = serde_json::from_str(&audited).unwrap();
    assert_eq!(audited["deliveryId"], detail["id"]);
    assert_eq!(audited["status"], "failed");
}

#[test]
fn serve_help_documents_every_setting() {
    let help = hookd_binary().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let in_help: std::collections::BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split([']', '=']).next())
        .map(str::to_owned)
        .collect();
    // The README's configuration table, one `HOOKD_*` variable per row.
    let readme = include_str!("../README.md");
    let in_readme: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `HOOKD_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("HOOKD_{name}"))
        .collect();
    assert!(in_help.len() >= 20, "{in_help:?}");
    assert_eq!(
        in_help, in_readme,
        "`hookd serve --help` and the README's table"
    );
}

#[test]
fn a_bad_setting_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookd_binary()
        .arg("serve")
        .env("HOOKD_DATA_DIR", dir.path())
        .env("HOOKD_ALLOW_NETWORKS", "10.0.0.0/8,not-a-network")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("HOOKD_ALLOW_NETWORKS") && message.contains("not-a-network"),
        "{message}"
    );
}
