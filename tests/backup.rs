//! `hookd backup`: an online copy taken while the server keeps serving and delivering,
//! restored into a working server as the README says.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Receiver, spawn_app, spawn_app_with, test_args, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_backup_taken_under_load_restores_into_a_working_server() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (survey, webhook) = app.survey_with_webhook(&receiver, json!({})).await;
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (app, stop, survey) = (app.clone(), stop.clone(), survey.clone());
        tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                app.complete_response(&survey, 5).await;
                sent += 1;
            }
            sent
        })
    };
    wait_until("the load is delivering", WAIT, || async {
        receiver.count() >= 20
    })
    .await;

    let backups = tempfile::tempdir().unwrap();
    let file: PathBuf = backups.path().join("hookd-backup.db");
    let out = common::run_cli(&app.data_dir, &["backup", "--to", file.to_str().unwrap()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delivered_at_backup = receiver.count();
    wait_until("the server kept delivering", WAIT, || async {
        receiver.count() >= delivered_at_backup + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() >= 20);

    let copy = rusqlite::Connection::open(&file).unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let backed_up: i64 = copy
        .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert!(backed_up >= 20, "{backed_up} deliveries in the backup");
    drop(copy);
    let again = common::run_cli(&app.data_dir, &["backup", "--to", file.to_str().unwrap()]).await;
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("already exists"), "{error}");

    // Restore as the README says: a new data directory holding the backup as hookd.db.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&file, restored.path().join("hookd.db")).unwrap();
    let args = test_args(restored.path());
    let second = spawn_app_with(args, Some(restored)).await;
    let (code, got) = second.get(&format!("/api/surveys/{survey}")).await;
    assert_eq!(code, 200, "{got}");
    let (code, hook) = second
        .get(&format!("/api/surveys/{survey}/webhooks/{webhook}"))
        .await;
    assert_eq!(code, 200, "{hook}");
    let (code, list) = second
        .get(&format!(
            "/api/surveys/{survey}/webhooks/{webhook}/deliveries?limit=200"
        ))
        .await;
    assert_eq!(code, 200, "{list}");
    assert!(list["items"].as_array().unwrap().len() >= 20);
    let (_, audit) = app.get("/api/admin/audit?limit=1").await;
    assert_eq!(audit["items"][0]["action"], "database.backed_up");
}
