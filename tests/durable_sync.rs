//! How a durable commit reaches the disk: the WAL is synced with fdatasync(2), not
//! fsync(2). SQLite's bundled build uses fsync unless compiled with `HAVE_FDATASYNC`
//! (set for the whole tree in `.cargo/config.toml`); fsync also writes the file's
//! timestamps back, an ext4 journal commit per acknowledgement. Watched from outside with
//! strace(1) around the real binary, so it fails if that build setting is ever lost.

mod common;

use std::path::Path;
use std::process::Command;

/// Runs `hookd ARGS --data-dir DIR` under strace and answers the sync calls it made, one
/// line each, with file descriptors shown as paths (`fdatasync(5</…/hookd.db-wal>)`).
fn syncs_of(data_dir: &Path, args: &[&str]) -> Vec<String> {
    let log = data_dir.join("strace.log");
    let output = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            "signal=none",
        ])
        .arg("-o")
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("HOOKD_DATA_DIR")
        .output()
        .expect("strace runs (.ci/run installs it)");
    assert!(
        output.status.success(),
        "hookd {args:?} under strace failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_durable_commit_syncs_the_wal_with_fdatasync() {
    // A server makes the database; `keys create` then writes a key, a durable commit.
    let mut app = common::spawn_app().await;
    app.stop().await;
    let data_dir = app.data_dir.clone();
    let syncs = tokio::task::spawn_blocking(move || {
        syncs_of(
            &data_dir,
            &["keys", "create", "--name", "his", "--role", "integration"],
        )
    })
    .await
    .unwrap();
    let of_wal: Vec<&String> = syncs.iter().filter(|l| l.contains(".db-wal>")).collect();
    assert!(
        of_wal.iter().any(|l| l.contains("fdatasync(")),
        "no fdatasync of the WAL among {syncs:#?}"
    );
    let fsyncs: Vec<&&String> = of_wal.iter().filter(|l| l.contains(" fsync(")).collect();
    assert!(
        fsyncs.is_empty(),
        "the WAL was synced with fsync: {fsyncs:#?}"
    );
}
