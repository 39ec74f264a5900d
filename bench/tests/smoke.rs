//! The harness itself works: every scenario runs at a tiny size against the debug `hookd`
//! binary and produces its report. Nothing here asserts how fast anything is; the figures
//! come from the full-size runs (README, "Performance").

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use hookd_bench::{Options, Report, Scenario};
use serde_json::{Value, json};

/// The `hookd` binary of this build profile: the test runs as `target/<profile>/deps/smoke-*`
/// and the binary sits in `target/<profile>/`. `CARGO_BIN_EXE_hookd` is not available to
/// another package's tests, hence the path. Cargo is asked to bring it up to date once
/// (a no-op after `cargo test --workspace`, which builds it).
fn hookd() -> PathBuf {
    static HOOKD: OnceLock<PathBuf> = OnceLock::new();
    HOOKD
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test executable has a path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("tests run from target/<profile>/deps");
            let hookd = profile_dir.join(format!("hookd{}", std::env::consts::EXE_SUFFIX));
            if !hookd.is_file() {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let mut build = Command::new(cargo);
                build.args(["build", "-p", "hookd", "--bin", "hookd"]);
                if profile_dir.ends_with("release") {
                    build.arg("--release");
                }
                let status = build.status().expect("running cargo build");
                assert!(status.success(), "cargo build of hookd failed: {status}");
            }
            hookd
        })
        .clone()
}

fn tiny(size: u64) -> Options {
    Options {
        size: Some(size),
        concurrency: 4,
        rate: Some(200),
        // The hanging receiver holds requests twice this long.
        timeout_ms: 300,
        deadline: Duration::from_secs(60),
        progress: false,
        ..Options::new(hookd())
    }
}

async fn run(scenario: Scenario, size: u64) -> Vec<Report> {
    let reports = hookd_bench::run(scenario, &tiny(size))
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", scenario.name()));
    for report in &reports {
        assert_eq!(report.scenario, scenario.name());
        let line: Value = serde_json::from_str(&report.json_line()).expect("one JSON object");
        assert_eq!(line["scenario"], scenario.name());
        assert!(report.table().contains(scenario.name()));
    }
    reports
}

fn figure<'a>(report: &'a Report, name: &str) -> &'a Value {
    report
        .get(name)
        .unwrap_or_else(|| panic!("{} has no figure {name}", report.scenario))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reports_acknowledgements_with_1_and_10_webhooks_receiver_up_and_down() {
    let reports = run(Scenario::Ingest, 20).await;
    let variants = [(1, "up"), (1, "down"), (10, "up"), (10, "down")];
    assert_eq!(reports.len(), variants.len());
    for (report, (webhooks, receiver)) in reports.iter().zip(variants) {
        assert_eq!(figure(report, "webhooks_per_survey"), &json!(webhooks));
        assert_eq!(figure(report, "receiver"), &json!(receiver));
        assert_eq!(figure(report, "acknowledged"), &json!(20));
        assert!(figure(report, "acks_per_s").is_number());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_delivers_the_whole_backlog() {
    let reports = run(Scenario::Throughput, 20).await;
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert_eq!(figure(report, "deliveries"), &json!(20));
        assert!(figure(report, "deliveries_per_s").is_number());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_delivers_the_whole_backlog_in_order() {
    let reports = run(Scenario::Fifo, 20).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(figure(&reports[0], "deliveries"), &json!(20));
    assert_eq!(figure(&reports[0], "out_of_order"), &json!(0));
    assert!(figure(&reports[0], "deliveries_per_s").is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_reports_percentiles() {
    let reports = run(Scenario::Latency, 40).await;
    assert_eq!(figure(&reports[0], "errors"), &json!(0));
    assert!(figure(&reports[0], "e2e_p99_ms").is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_compares_runs_with_and_without_the_hanging_receiver() {
    let reports = run(Scenario::Isolation, 40).await;
    assert!(figure(&reports[0], "baseline_p99_ms").is_number());
    assert!(figure(&reports[0], "with_hanging_p99_ms").is_number());
    assert!(figure(&reports[0], "hanging_requests_received").as_u64() > Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_drains_the_backlog_after_a_sigkill() {
    let reports = run(Scenario::Recovery, 50).await;
    assert!(figure(&reports[0], "restart_to_first_delivery_ms").is_number());
    assert!(figure(&reports[0], "peak_rss_mb").as_f64() > Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_reports_memory_with_10_webhooks_per_survey() {
    let reports = run(Scenario::Scale, 3).await;
    assert_eq!(figure(&reports[0], "webhooks"), &json!(30));
    assert_eq!(figure(&reports[0], "deliveries"), &json!(30));
    assert!(figure(&reports[0], "rss_mb_idle").as_f64() > Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sends_every_email_of_each_distribution() {
    let reports = run(Scenario::Messages, 20).await;
    assert_eq!(figure(&reports[0], "emails"), &json!(20));
    assert!(figure(&reports[0], "distribution_answer_p50_ms").is_number());
    assert!(figure(&reports[0], "emails_per_second_median").as_f64() > Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_latency_reports_both_rates_from_the_stamps() {
    let reports = run(Scenario::ClientLatency, 2).await;
    let rates: Vec<&Value> = reports.iter().map(|r| figure(r, "events_per_s")).collect();
    assert_eq!(rates, [&json!(500), &json!(1000)]);
    for report in &reports {
        assert!(figure(report, "e2e_p99_ms").is_number());
        assert!(figure(report, "ack_p99_ms").is_number());
    }
}
