//! Messages (issue 13): emails per second to a mail server that accepts at once, with
//! `HOOKD_MESSAGE_RATE_LIMIT=0`, and how long a distribution to 1,000 contacts takes to
//! answer.
//!
//! Method: the sink of [`crate::smtp_sink`] on loopback; `size` contacts (default 5,000)
//! with an email address, upserted 1,000 at a time. Then, one after another, a quick
//! distribution by email to each 1,000 of them: the request is timed at the client (it
//! writes 1,000 invitations, events and jobs in one durable transaction), and then the
//! time from sending the request until the sink has accepted its 1,000th email, so each
//! distribution starts on an idle server. Reported: the distributions' answer times and
//! the emails per second of each send, and hookd's CPU per email.

use std::time::{Duration, Instant};

use anyhow::ensure;
use reqwest::Method;
use serde_json::json;

use super::{CpuMeter, launch};
use crate::Options;
use crate::report::{Percentiles, Report};
use crate::server::Server;
use crate::smtp_sink::SmtpSink;

/// Default contacts, in distributions of [`PER_DISTRIBUTION`].
pub const DEFAULT_SIZE: u64 = 5_000;
const PER_DISTRIBUTION: usize = 1_000;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let contacts = options.size_or(DEFAULT_SIZE).max(1) as usize;
    let per_distribution = PER_DISTRIBUTION.min(contacts);
    let sink = SmtpSink::start().await?;
    let dir = tempfile::tempdir()?;
    let own = [
        ("HOOKD_SMTP_URL", sink.url()),
        ("HOOKD_SMTP_FROM", "surveys@clinic.example".to_owned()),
        ("HOOKD_MESSAGE_RATE_LIMIT", "0".to_owned()),
    ];
    let server = Server::start(&launch(options, dir.path(), &own)).await?;
    let api = &server.api;
    let survey = api.create_survey("messages").await?;
    let mut ids = Vec::with_capacity(contacts);
    for start in (0..contacts).step_by(PER_DISTRIBUTION) {
        let batch: Vec<_> = (start..(start + PER_DISTRIBUTION).min(contacts))
            .map(|i| json!({"externalId": format!("P-{i}"), "email": format!("patient{i}@example.org"), "firstName": "Ada"}))
            .collect();
        let (status, answer) = api
            .call(
                Method::POST,
                "/api/directory/contacts/upsert",
                Some(json!({"contacts": batch})),
            )
            .await?;
        ensure!(status.is_success(), "upsert: {status} {answer}");
        for item in answer["items"].as_array().into_iter().flatten() {
            ids.push(
                item["contact"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let mut answer_us = Vec::new();
    let mut rates = Vec::new();
    let cpu = CpuMeter::start(&server);
    let phase = Instant::now();
    let mut target = 0;
    for chunk in ids.chunks(per_distribution) {
        let started = Instant::now();
        let (status, answer) = api
            .call(
                Method::POST,
                &format!("/api/surveys/{survey}/distributions/quick"),
                Some(json!({"contactIds": chunk, "channel": "email"})),
            )
            .await?;
        answer_us.push(started.elapsed().as_micros() as u64);
        ensure!(status.as_u16() == 201, "distribution: {status} {answer}");
        target += chunk.len() as u64;
        while sink.accepted() < target {
            ensure!(
                started.elapsed() < options.deadline,
                "only {} of {target} emails accepted",
                sink.accepted()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        rates.push(chunk.len() as f64 / started.elapsed().as_secs_f64());
    }
    let used = cpu.stop();
    let seconds = phase.elapsed().as_secs_f64();
    let sent = ids.len() as u64;
    rates.sort_by(f64::total_cmp);
    let mut report = Report::new("messages");
    report
        .add("emails", sent)
        .add("per_distribution", per_distribution as u64)
        .add("emails_per_second_median", rates[rates.len() / 2].round())
        .add("emails_per_second_min", rates[0].round())
        .add_percentiles("distribution_answer", &Percentiles::of(answer_us));
    used.add_to(&mut report);
    report.add(
        "hookd_cpu_us_per_email",
        (used.hookd_pct / 100.0 * seconds / sent as f64 * 1e6).round(),
    );
    server.kill()?;
    Ok(vec![report])
}
