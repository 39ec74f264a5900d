//! A full disk under a running server: writes are refused with 503 `unavailable` and
//! `Retry-After`, readiness says so, reads and every acknowledged row survive, and the
//! server carries on by itself once there is room again.
//!
//! The data directory lives on a small tmpfs that the test fills with a file; mounting
//! needs root (as in CI). Elsewhere the test says it was skipped and passes.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{KEY, Receiver, TestApp, spawn_app_with, test_args, wait_until};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

/// A tmpfs mounted for one test; unmounted when dropped, also when the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `8m`), or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("mounting a tmpfs needs root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !mounted.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Still busy (a failed test left the server running): detach it now, the
            // kernel frees it once the last file is closed.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the file system of `dir` with one file until the disk refuses more.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial block: the disk is now full to the byte.
    let small = [0u8; 512];
    while file.write(&small).is_ok_and(|n| n > 0) {}
    drop(file);
    path
}

/// A write through the API: upserts a contact. Answers status, `Retry-After`, body.
async fn upsert(app: &TestApp, n: usize) -> (StatusCode, Option<String>, Value) {
    let response = app
        .client
        .post(app.url("/api/directory/contacts/upsert"))
        .bearer_auth(KEY)
        .json(
            &json!({"externalId": format!("HIS-{n}"), "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

async fn readyz(app: &TestApp) -> StatusCode {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Every acknowledged contact can be read back with what was written.
async fn assert_all_there(app: &TestApp, acknowledged: &[(usize, String)]) {
    for (n, id) in acknowledged {
        let (status, contact) = app.get(&format!("/api/directory/contacts/{id}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged contact {n}: {contact}"
        );
        assert_eq!(contact["externalId"], format!("HIS-{n}"));
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_503_keeps_what_was_acknowledged_and_recovers_by_itself() {
    let disk = match Tmpfs::mount("8m") {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let data_dir = disk.path().join("data");
    let mut app = spawn_app_with(test_args(&data_dir), None).await;

    let receiver = Receiver::start().await;
    let survey = app.create_survey().await;
    app.create_webhook(&survey, &receiver.url("/his"), json!({}))
        .await;
    app.complete_response(&survey, 5).await;
    wait_until("the first delivery", Duration::from_secs(20), || async {
        receiver.count() == 1
    })
    .await;

    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let (status, _, body) = upsert(&app, n).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        acknowledged.push((n, body["contact"]["id"].as_str().unwrap().to_owned()));
    }

    let filler = fill(disk.path());
    // The WAL may still have room from before (it is reused once folded in), so a few
    // writes can still go through: each one that is answered 201 counts as acknowledged.
    let mut n = acknowledged.len();
    let refused = loop {
        assert!(n < 2000, "writes kept succeeding on a full disk");
        let (status, retry_after, body) = upsert(&app, n).await;
        match status {
            StatusCode::CREATED => {
                acknowledged.push((n, body["contact"]["id"].as_str().unwrap().to_owned()));
            }
            StatusCode::SERVICE_UNAVAILABLE => break (retry_after, body),
            other => panic!("a write on a full disk answered {other}: {body}"),
        }
        n += 1;
    };
    let (retry_after, body) = refused;
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let seconds: u64 = retry_after
        .expect("a 503 says when to retry")
        .parse()
        .unwrap();
    assert!(seconds > 0);

    // The fault holds while the disk is full: readiness says so, also after a write that
    // went through. A write may still fit in space the database's files already hold (a
    // WAL that a failed commit lengthened, a WAL folded in and reused): then it is
    // acknowledged, and must be kept; otherwise it is refused like the first.
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    let (status, retry_after, body) = upsert(&app, n + 1).await;
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            assert!(retry_after.is_some());
        }
        StatusCode::CREATED => {
            acknowledged.push((n + 1, body["contact"]["id"].as_str().unwrap().to_owned()));
        }
        other => panic!("a write on a full disk answered {other}: {body}"),
    }
    assert_eq!(readyz(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = app
        .post(
            &format!("/api/surveys/{survey}/responses"),
            json!({"answers": {"stars": {"value": 4}}}),
        )
        .await;
    let response = match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            None
        }
        StatusCode::CREATED => Some(body["id"].as_str().unwrap().to_owned()),
        other => panic!("a response on a full disk answered {other}: {body}"),
    };
    // Reads still work, and nothing acknowledged is missing.
    assert_all_there(&app, &acknowledged).await;

    // Room again: readiness comes back with no client writing, then writes do.
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "the server is ready again",
        Duration::from_secs(20),
        || async { readyz(&app).await == StatusCode::OK },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let n = n + 2;
    loop {
        let (status, _, body) = upsert(&app, n).await;
        if status == StatusCode::CREATED {
            acknowledged.push((n, body["contact"]["id"].as_str().unwrap().to_owned()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_all_there(&app, &acknowledged).await;
    // The delivery engine carries on too: a new event goes out (after the one of a
    // response acknowledged on the full disk, if there was one).
    app.complete_response(&survey, 3).await;
    let delivered = 2 + usize::from(response.is_some());
    wait_until(
        "the delivery after the fault",
        Duration::from_secs(20),
        || async { receiver.count() == delivered },
    )
    .await;

    // And they are in the file, not only in this process: a fresh start finds them all.
    app.stop().await;
    let mut app = spawn_app_with(test_args(&data_dir), None).await;
    assert_all_there(&app, &acknowledged).await;
    if let Some(response) = response {
        let (status, body) = app
            .get(&format!("/api/surveys/{survey}/responses/{response}"))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the response acknowledged on a full disk: {body}"
        );
    }
    app.stop().await;
}
