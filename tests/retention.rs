//! Retention: finished deliveries, their attempts and event bodies past the retention period
//! are purged in batches; pending deliveries and the events they need never are.

mod common;

use std::time::Duration;

use common::{Receiver, Reply, TestApp, spawn_app, spawn_app_with, test_args, wait_until};
use hookd::config::ServeArgs;
use hookd::domain::time::now_ms;
use hookd::domain::{EventId, WebhookId};
use hookd::store::retention::purge_batch;
use rusqlite::Connection;
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const WAIT: Duration = Duration::from_secs(15);

struct Scene {
    app: TestApp,
    survey: String,
    /// Webhooks answering 200, 500 (never retried) and 410 (disabled, its delivery paused).
    ok: String,
    bad: String,
    /// The event ids of three responses, oldest first.
    events: Vec<String>,
}

async fn deliveries_of(app: &TestApp, survey: &str, webhook: &str) -> Vec<Value> {
    app.deliveries(survey, webhook).await
}

/// Three responses; the `/gone` webhook is disabled by the first and then switched off by an
/// operator, so only that first delivery of it is paused.
async fn scene() -> Scene {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(|r, _| match r.path.as_str() {
        "/bad" => Reply::status(500),
        "/gone" => Reply::status(410),
        _ => Reply::ok(),
    })
    .await;
    let survey = app.create_survey().await;
    let ok = app
        .create_webhook(&survey, &receiver.url("/ok"), json!({}))
        .await;
    let bad = app
        .create_webhook(&survey, &receiver.url("/bad"), json!({"retryPolicy": []}))
        .await;
    let gone = app
        .create_webhook(&survey, &receiver.url("/gone"), json!({}))
        .await;
    let mut events = Vec::new();
    for n in 1..=3 {
        if n == 2 {
            // Disabled by hookd it would collect a paused delivery per event; switched off
            // by an operator it keeps the one it has and collects no more.
            let path = format!("/api/surveys/{survey}/webhooks/{gone}");
            wait_until("the 410 disabled /gone", WAIT, || async {
                app.get(&path).await.1["isActive"] == false
            })
            .await;
            app.patch(&path, json!({"isActive": false})).await;
        }
        app.complete_response(&survey, 3).await;
        wait_until("the response's deliveries finished", WAIT, || async {
            let done = |list: Vec<Value>| {
                list.len() == n
                    && list
                        .iter()
                        .all(|d| d["status"] != "pending" && d["status"] != "delivering")
            };
            done(deliveries_of(&app, &survey, &ok).await)
                && done(deliveries_of(&app, &survey, &bad).await)
        })
        .await;
        events.push(
            deliveries_of(&app, &survey, &ok).await[0]["eventId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    Scene {
        app,
        survey,
        ok,
        bad,
        events,
    }
}

/// Moves every stored time `days` into the past, as if the scene had happened then.
fn age_everything(db: &Connection, days: i64) {
    let shift = days * DAY_MS;
    db.execute_batch(&format!(
        "UPDATE deliveries SET created_at = created_at - {shift}, completed_at = completed_at - {shift}, \
         next_attempt_at = next_attempt_at - {shift}; \
         UPDATE attempts SET started_at = started_at - {shift}; \
         UPDATE events SET created_at = created_at - {shift};"
    ))
    .unwrap();
}

fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn database(app: &TestApp) -> Connection {
    let db = Connection::open(app.data_dir.join("hookd.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db
}

#[tokio::test]
async fn a_purge_forgets_old_finished_deliveries_in_batches_and_keeps_what_is_still_owed() {
    let mut scene = scene().await;
    scene.app.stop().await;
    let db = database(&scene.app);
    age_everything(&db, 40);
    // The second response's success was retried recently: it is not old yet.
    db.execute(
        "UPDATE deliveries SET completed_at = ?1 WHERE event_id = ?2 AND webhook_id = ?3",
        rusqlite::params![
            now_ms(),
            scene.events[1].parse::<EventId>().unwrap(),
            scene.ok.parse::<WebhookId>().unwrap()
        ],
    )
    .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries"), 7);

    let cutoff = now_ms() - 30 * DAY_MS;
    let mut rounds = 0;
    loop {
        let purged = purge_batch(&db, cutoff, 2).unwrap();
        assert!(purged.deliveries <= 2 && purged.events <= 2);
        if purged.is_empty() {
            break;
        }
        rounds += 1;
    }
    assert!(
        rounds >= 3,
        "five deliveries in batches of two take three rounds"
    );

    // Kept: the paused delivery of the disabled webhook (old, but still owed) and the recent one.
    let statuses: Vec<(String, String)> = db
        .prepare("SELECT status, event_id FROM deliveries ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, EventId>(1)?.to_string())))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        statuses,
        vec![
            ("pending".to_owned(), scene.events[0].clone()),
            ("succeeded".to_owned(), scene.events[1].clone())
        ]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM attempts"), 2);
    // The first event still has its body (the paused delivery will send it), the second is
    // still referenced, the third is gone with all its deliveries.
    let bodies: Vec<(String, bool)> = db
        .prepare("SELECT id, payload IS NOT NULL FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, EventId>(0)?.to_string(), r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        bodies,
        vec![
            (scene.events[0].clone(), true),
            (scene.events[1].clone(), true)
        ]
    );
    // The response itself (the survey platform's record) is not the queue's to purge.
    assert_eq!(count(&db, "SELECT count(*) FROM responses"), 3);
}

#[tokio::test]
async fn the_server_purges_at_start_with_the_configured_retention_days() {
    let mut scene = scene().await;
    scene.app.stop().await;
    age_everything(&database(&scene.app), 2);

    let args = ServeArgs {
        retention_days: Some(1),
        ..test_args(&scene.app.data_dir)
    };
    let app = spawn_app_with(args, None).await;
    wait_until("the old deliveries are purged", WAIT, || async {
        deliveries_of(&app, &scene.survey, &scene.ok)
            .await
            .is_empty()
            && deliveries_of(&app, &scene.survey, &scene.bad)
                .await
                .is_empty()
    })
    .await;
    let (_, queue) = app.get("/api/admin/queue").await;
    assert_eq!(
        queue["totals"],
        json!({"pending": 1, "delivering": 0, "succeeded": 0, "failed": 0})
    );
    let events = count(&database(&app), "SELECT count(*) FROM events");
    assert_eq!(events, 1, "only the paused delivery's event is kept");
}
