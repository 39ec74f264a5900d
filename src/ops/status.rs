//! `hookd status`: the delivery queue per webhook — state, deliveries by status, oldest
//! pending age, next attempt — disabled webhooks first. Reads only; safe beside a running
//! server.

use clap::Args;

use super::DataDir;
use super::table::{Align, Table, duration, relative};
use crate::domain::time::{Millis, format_ms, now_ms};
use crate::store::overview::{self, WebhookState, WebhookSummary};
use crate::views::QueueView;

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print JSON: the same document as `GET /api/admin/queue`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs, data: &DataDir) -> anyhow::Result<()> {
    let conn = super::open_existing(data)?;
    let now = now_ms();
    let rows = overview::queue_summary(&conn, now)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&QueueView::new(&rows, now))?
        );
    } else {
        print!("{}", render(&rows, now));
    }
    Ok(())
}

/// The human summary: one aligned line per webhook, then why each disabled one is off.
pub fn render(rows: &[WebhookSummary], now: Millis) -> String {
    if rows.is_empty() {
        return "no webhooks registered\n".into();
    }
    let mut table = Table::new(&[
        ("STATE", Align::Left),
        ("WEBHOOK", Align::Left),
        ("NAME", Align::Left),
        ("PENDING", Align::Right),
        ("DELIVERING", Align::Right),
        ("SUCCEEDED", Align::Right),
        ("FAILED", Align::Right),
        ("STREAK", Align::Right),
        ("OLDEST PENDING", Align::Left),
        ("NEXT ATTEMPT", Align::Left),
    ]);
    let mut notes = String::new();
    for row in rows {
        let next = match (row.state, row.next_attempt_at) {
            (_, None) => "-".to_owned(),
            (WebhookState::Active, Some(at)) => relative(at, now),
            (_, Some(_)) => "paused".to_owned(),
        };
        table.row(vec![
            row.state.as_str().to_owned(),
            row.webhook_id.to_string(),
            row.name.clone(),
            row.counts.pending.to_string(),
            row.counts.delivering.to_string(),
            row.counts.succeeded.to_string(),
            row.counts.failed.to_string(),
            row.consecutive_failures.to_string(),
            row.oldest_pending_at
                .map_or("-".to_owned(), |at| duration(now - at)),
            next,
        ]);
        if row.state == WebhookState::Disabled {
            // Deliveries in flight when it was disabled still end and count.
            let streak = match row.failures_when_disabled {
                Some(at) if at != row.consecutive_failures => format!(
                    "; {} failed in a row now, {at} when disabled",
                    row.consecutive_failures
                ),
                _ => String::new(),
            };
            notes.push_str(&format!(
                "disabled {}: {} (since {}){streak}; re-enable with `hookd webhooks enable {}`\n",
                row.webhook_id,
                super::table::clean(
                    row.disabled_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                ),
                row.disabled_at.map(format_ms).unwrap_or_default(),
                row.webhook_id
            ));
        }
    }
    let queue = QueueView::new(rows, now);
    let totals = queue.totals;
    let mut out = table.render();
    out.push_str(&format!(
        "\ntotal: {} pending, {} delivering, {} succeeded, {} failed; {} claims past their lease\n",
        totals.pending, totals.delivering, totals.succeeded, totals.failed, queue.expired_claims
    ));
    for (name, channel) in [("email", queue.messages.email), ("sms", queue.messages.sms)] {
        if let Some(c) = channel {
            out.push_str(&format!(
                "messages by {name}: {} queued, {} sent, {} failed\n",
                c.queued, c.sent, c.failed
            ));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SurveyId, WebhookId};
    use crate::store::overview::StatusCounts;

    fn summary(name: &str, state: WebhookState) -> WebhookSummary {
        WebhookSummary {
            webhook_id: WebhookId::new(),
            survey_id: SurveyId::new(),
            name: name.into(),
            url: "https://his.example/hook".into(),
            state,
            ordering: Default::default(),
            disabled_at: (state == WebhookState::Disabled).then_some(1_000),
            disabled_reason: (state == WebhookState::Disabled)
                .then(|| "10 consecutive deliveries failed".into()),
            consecutive_failures: 10,
            failures_when_disabled: (state == WebhookState::Disabled).then_some(10),
            counts: StatusCounts {
                pending: 3,
                delivering: 0,
                succeeded: 12,
                failed: 10,
            },
            oldest_pending_at: Some(1_000),
            next_attempt_at: Some(5_000),
            expired_claims: 0,
        }
    }

    #[test]
    fn a_disabled_webhook_shows_its_reason_and_its_paused_queue() {
        let rows = [
            summary("HIS", WebhookState::Disabled),
            summary("Archive", WebhookState::Active),
        ];
        let text = render(&rows, 61_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("STATE     WEBHOOK"), "{text}");
        assert!(lines[1].starts_with("disabled") && lines[1].contains("paused"));
        assert!(lines[2].starts_with("active") && lines[2].contains("due"));
        assert!(text.contains("total: 6 pending, 0 delivering, 24 succeeded, 20 failed"));
        assert!(text.contains("10 consecutive deliveries failed"));
        // Every data line has its columns at the header's positions.
        let at = lines[0].find("PENDING").unwrap() + "PENDING".len();
        assert_eq!(&lines[1][at - 1..at], "3");
        assert!(
            !text.contains("when disabled"),
            "the streak is the reason's: {text}"
        );
    }

    #[test]
    fn a_streak_past_the_one_that_disabled_the_webhook_is_explained() {
        let mut row = summary("HIS", WebhookState::Disabled);
        row.consecutive_failures = 11;
        let text = render(&[row], 61_000);
        assert!(
            text.contains("10 consecutive deliveries failed")
                && text.contains("11 failed in a row now, 10 when disabled"),
            "{text}"
        );
    }
}
