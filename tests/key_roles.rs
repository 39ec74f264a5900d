//! Key roles (SPEC §9): each role reaches exactly its routes (403 `forbidden` elsewhere),
//! a viewer sees no patient data, expired keys are refused and their expiry audited, a
//! role change reaches the running server and is audited, and `hookd keys list` shows
//! role, expiry and last use (written at most once a minute).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Receiver, Reply, TestApp, create_key, run_cli, spawn_app, wait_until};
use hookd::domain::KeyId;
use reqwest::{Method, StatusCode};
use rusqlite::Connection;
use serde_json::{Value, json};

const ADMIN: &str = "admin";
const INTEGRATION: &str = "integration";
const KIOSK: &str = "kiosk";
const VIEWER: &str = "viewer";

/// Every route under `/api/`, with the roles that may call it, written from SPEC §9.
const ROUTES: &[(&str, &str, &[&str])] = &[
    ("GET", "/api/me", &[ADMIN, INTEGRATION, VIEWER]),
    ("GET", "/api/event-types", &[ADMIN, INTEGRATION, VIEWER]),
    ("GET", "/api/admin/queue", &[ADMIN, VIEWER]),
    ("GET", "/api/admin/audit", &[ADMIN, VIEWER]),
    ("GET", "/api/admin/throughput", &[ADMIN, VIEWER]),
    ("GET", "/api/admin/deliveries", &[ADMIN, VIEWER]),
    ("POST", "/api/surveys", &[ADMIN, INTEGRATION]),
    ("GET", "/api/surveys", &[ADMIN, INTEGRATION, VIEWER]),
    (
        "GET",
        "/api/surveys/{surveyId}",
        &[ADMIN, INTEGRATION, KIOSK, VIEWER],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/responses",
        &[ADMIN, INTEGRATION, KIOSK],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/responses/{responseId}",
        &[ADMIN, INTEGRATION],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/responses/bulk-status",
        &[ADMIN, INTEGRATION],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/responses/bulk-status",
        &[ADMIN, INTEGRATION],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/distributions/quick",
        &[ADMIN, INTEGRATION],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/distributions/{distributionId}",
        &[ADMIN, INTEGRATION],
    ),
    (
        "POST",
        "/api/directory/contacts/upsert",
        &[ADMIN, INTEGRATION],
    ),
    ("GET", "/api/directory/contacts", &[ADMIN, INTEGRATION]),
    (
        "GET",
        "/api/directory/contacts/{contactId}",
        &[ADMIN, INTEGRATION],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/webhooks",
        &[ADMIN, INTEGRATION],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/webhooks",
        &[ADMIN, INTEGRATION, VIEWER],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/webhooks/{id}",
        &[ADMIN, INTEGRATION, VIEWER],
    ),
    (
        "PATCH",
        "/api/surveys/{surveyId}/webhooks/{id}",
        &[ADMIN, INTEGRATION],
    ),
    (
        "DELETE",
        "/api/surveys/{surveyId}/webhooks/{id}",
        &[ADMIN, INTEGRATION],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/webhooks/{id}/test",
        &[ADMIN, INTEGRATION],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/webhooks/{id}/deliveries",
        &[ADMIN, INTEGRATION, VIEWER],
    ),
    (
        "GET",
        "/api/surveys/{surveyId}/webhooks/{id}/deliveries/{deliveryId}",
        &[ADMIN, INTEGRATION, VIEWER],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/webhooks/{id}/deliveries/{deliveryId}/retry",
        &[ADMIN, INTEGRATION],
    ),
    (
        "POST",
        "/api/surveys/{surveyId}/webhooks/{id}/replay",
        &[ADMIN, INTEGRATION],
    ),
];

/// The `/api/` operations the server documents, as `METHOD path`.
async fn documented_api_routes(app: &TestApp) -> BTreeSet<String> {
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                routes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn each_role_reaches_exactly_the_routes_of_the_contract() {
    let app = spawn_app().await;
    // The table covers every documented route: a new route needs a decision here.
    let table: BTreeSet<String> = ROUTES
        .iter()
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    assert_eq!(table, documented_api_routes(&app).await);

    let mut keys = vec![(ADMIN, create_key(&app, "ops", ADMIN).await.1)];
    for role in [INTEGRATION, KIOSK, VIEWER] {
        keys.push((role, create_key(&app, role, role).await.1));
    }
    for (method, template, allowed) in ROUTES {
        // Ids that name nothing: an allowed call is refused by the handler (404, 422),
        // never by the role check, and changes nothing.
        let path = template
            .replace("{surveyId}", "0190a000-0000-7000-8000-000000000000")
            .replace("{id}", "0190a000-0000-7000-8000-000000000001")
            .replace("{deliveryId}", "0190a000-0000-7000-8000-000000000002")
            .replace("{responseId}", "0190a000-0000-7000-8000-000000000003")
            .replace("{contactId}", "0190a000-0000-7000-8000-000000000004")
            .replace("{distributionId}", "0190a000-0000-7000-8000-000000000005");
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST || method == Method::PATCH).then(|| json!({}));
        for (role, key) in &keys {
            let (status, answer) = app.call_as(key, method.clone(), &path, body.clone()).await;
            if allowed.contains(role) {
                assert_ne!(status, StatusCode::FORBIDDEN, "{role} {method} {template}");
                assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{role} {method} {template}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} {method} {template}: {answer}"
                );
                assert_eq!(answer["error"]["code"], "forbidden");
                let message = answer["error"]["message"].as_str().unwrap();
                assert!(message.contains(role), "{message}");
            }
        }
    }
}

#[tokio::test]
async fn a_kiosk_key_submits_responses_and_reads_its_survey_only() {
    let app = spawn_app().await;
    let survey = app.create_survey().await;
    let (_, kiosk) = create_key(&app, "waiting room", KIOSK).await;
    let (status, _) = app
        .call_as(&kiosk, Method::GET, &format!("/api/surveys/{survey}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let answers = json!({"answers": {"stars": {"value": 4}}});
    let (status, response) = app
        .call_as(
            &kiosk,
            Method::POST,
            &format!("/api/surveys/{survey}/responses"),
            Some(answers),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    let id = response["id"].as_str().unwrap();
    let (status, _) = app
        .call_as(
            &kiosk,
            Method::GET,
            &format!("/api/surveys/{survey}/responses/{id}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a kiosk cannot read answers back"
    );
}

#[tokio::test]
async fn a_viewer_sees_deliveries_without_payloads_or_the_receivers_answers() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|_, _| Reply::ok().body("echo: stars 5")).await;
    let (survey, webhook, delivery) = app.one_delivered(&receiver).await;
    let (_, viewer) = create_key(&app, "dashboard", VIEWER).await;
    let detail_path = format!("/api/surveys/{survey}/webhooks/{webhook}/deliveries/{delivery}");

    let (status, full) = app.get(&detail_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(full["payload"].is_object(), "{full}");
    assert_eq!(full["attempts"][0]["responseBody"], "echo: stars 5");

    let (status, shown) = app.call_as(&viewer, Method::GET, &detail_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(shown.get("payload").is_none(), "{shown}");
    let attempt = &shown["attempts"][0];
    assert_eq!(attempt["statusCode"], 200, "{shown}");
    assert!(attempt.get("responseBody").is_none(), "{shown}");

    let (status, recent) = app
        .call_as(&viewer, Method::GET, "/api/admin/deliveries", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let attempt = &recent["items"][0]["attempts"][0];
    assert_eq!(attempt["statusCode"], 200, "{recent}");
    assert!(attempt.get("responseBody").is_none(), "{recent}");
    let viewed = format!("{shown}{recent}");
    assert!(
        !viewed.contains("stars"),
        "no answers in a viewer's views: {viewed}"
    );
    let (_, recent) = app.get("/api/admin/deliveries").await;
    assert_eq!(
        recent["items"][0]["attempts"][0]["responseBody"],
        "echo: stars 5"
    );
}

fn database(app: &TestApp) -> Connection {
    Connection::open(app.data_dir.join("hookd.db")).unwrap()
}

async fn keys_list(app: &TestApp) -> String {
    let out = run_cli(&app.data_dir, &["keys", "list"]).await;
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn audit_of(conn: &Connection, action: &str, key: &str) -> Option<Value> {
    conn.query_row(
        "SELECT detail FROM audit_log WHERE action = ?1 AND target_id = ?2",
        [action, key],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .map(|detail| serde_json::from_str(&detail).unwrap())
}

#[tokio::test]
async fn an_expired_key_is_refused_with_401_and_its_expiry_is_audited_once() {
    let app = spawn_app().await;
    let out = run_cli(
        &app.data_dir,
        &[
            "keys",
            "create",
            "--name",
            "locum",
            "--role",
            INTEGRATION,
            "--expires-in-days",
            "7",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let conn = database(&app);
    let (key, expires_at, created_at): (KeyId, i64, i64) = conn
        .query_row(
            "SELECT id, expires_at, created_at FROM api_keys WHERE name = 'locum'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(expires_at - created_at, 7 * 24 * 3600 * 1000);
    let id = key.to_string();
    let created = audit_of(&conn, "key.created", &id).unwrap();
    assert_eq!(created["role"], INTEGRATION);
    assert!(created["expiresAt"].is_string(), "{created}");

    wait_until("the key works", Duration::from_secs(5), || async {
        app.call_as(&secret, Method::GET, "/api/surveys", None)
            .await
            .0
            == StatusCode::OK
    })
    .await;
    // Bring the expiry close instead of waiting a week.
    conn.execute(
        "UPDATE api_keys SET expires_at = ?2, revision = revision + 1 WHERE id = ?1",
        rusqlite::params![key, hookd::domain::time::now_ms() + 1_000],
    )
    .unwrap();
    wait_until(
        "the expired key is refused",
        Duration::from_secs(10),
        || async {
            app.call_as(&secret, Method::GET, "/api/surveys", None)
                .await
                .0
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    wait_until("the expiry is audited", Duration::from_secs(5), || async {
        audit_of(&conn, "key.expired", &id).is_some()
    })
    .await;
    // Once, also across a restart: the table remembers that the expiry was noted. Once
    // the server knows two keys made after its start, its first rounds have run.
    let app = app.restart().await;
    create_key(&app, "marker one", VIEWER).await;
    create_key(&app, "marker two", VIEWER).await;
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'key.expired' AND key_id = 'hookd'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    let listed = keys_list(&app).await;
    let line = listed.lines().find(|l| l.contains(&id)).unwrap();
    assert!(line.contains("expired"), "{listed}");
}

#[tokio::test]
async fn keys_list_shows_role_expiry_and_a_last_use_written_at_most_once_a_minute() {
    let app = spawn_app().await;
    let (id, secret) = create_key(&app, "dashboard", VIEWER).await;
    let conn = database(&app);
    let last_used = || -> Option<i64> {
        conn.query_row(
            "SELECT last_used_at FROM api_keys WHERE id = ?1",
            [id.parse::<KeyId>().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    };
    wait_until(
        "the first use is written",
        Duration::from_secs(5),
        || async { last_used().is_some() },
    )
    .await;
    let first = last_used().unwrap();
    for _ in 0..20 {
        let (status, _) = app
            .call_as(&secret, Method::GET, "/api/surveys", None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let seen = app.call_as(&secret, Method::GET, "/api/me", None).await.1;
    assert_eq!(seen["role"], VIEWER);
    assert_eq!(seen["keyId"], id.as_str());
    // The housekeeping loop reloads the keys, then writes their uses. Once the server knows
    // a second key made after these uses, a round that saw them has finished writing.
    create_key(&app, "marker one", VIEWER).await;
    create_key(&app, "marker two", VIEWER).await;
    assert_eq!(last_used(), Some(first), "not rewritten within the minute");

    let listed = keys_list(&app).await;
    let header = listed.lines().next().unwrap();
    for column in ["ID", "ROLE", "CREATED", "EXPIRES", "LAST USED", "NAME"] {
        assert!(header.contains(column), "{header}");
    }
    let line = listed.lines().find(|l| l.contains(&id)).unwrap();
    assert!(line.contains(VIEWER) && line.contains("never"), "{line}");
    assert!(!line.contains(" -  "), "a last use is shown: {line}");
}

#[tokio::test]
async fn a_new_role_reaches_the_running_server_and_is_audited() {
    let app = spawn_app().await;
    let (id, secret) = create_key(&app, "his", INTEGRATION).await;
    let queue = |key: String| {
        let app = &app;
        async move {
            app.call_as(&key, Method::GET, "/api/admin/queue", None)
                .await
                .0
        }
    };
    assert_eq!(queue(secret.clone()).await, StatusCode::FORBIDDEN);
    let out = run_cli(&app.data_dir, &["keys", "role", &id, VIEWER]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the new role applies", Duration::from_secs(5), || async {
        queue(secret.clone()).await == StatusCode::OK
    })
    .await;
    let (status, _) = app
        .call_as(&secret, Method::POST, "/api/surveys", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let changed = audit_of(&database(&app), "key.role_changed", &id).unwrap();
    assert_eq!(changed, json!({"from": INTEGRATION, "to": VIEWER}));
}

#[tokio::test]
async fn the_command_line_refuses_an_unknown_role_or_a_bad_expiry_and_stores_nothing() {
    let app = spawn_app().await;
    for args in [
        &["keys", "create", "--name", "x", "--role", "root"][..],
        &["keys", "create", "--name", "x", "--expires-in-days", "0"],
        &["keys", "create", "--name", "x", "--expires-in-days", "soon"],
        &[
            "keys",
            "role",
            "0190a000-0000-7000-8000-000000000000",
            "superuser",
        ],
    ] {
        let out = run_cli(&app.data_dir, args).await;
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--role")
                || stderr.contains("--expires-in-days")
                || stderr.contains("ROLE"),
            "{args:?}: {stderr}"
        );
    }
    let unknown = run_cli(
        &app.data_dir,
        &[
            "keys",
            "role",
            "0190a000-0000-7000-8000-000000000000",
            "viewer",
        ],
    )
    .await;
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no key"));
    let stored: i64 = database(&app)
        .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0);
}
