//! `hookd deliveries …` and `hookd webhooks …`: look at deliveries and their attempts, send
//! a finished delivery again, re-enable a webhook. A change is one transaction with its audit
//! entry and a control signal, so a running server acts on it within a moment and a stopped
//! one at its next start.

use clap::Subcommand;
use rusqlite::Connection;
use serde_json::{Value, json};

use super::table::{Align, Table, clean, clean_lines};
use super::{DataDir, audit_cli, open_existing, parse_id};
use crate::domain::time::{format_ms, now_ms};
use crate::domain::{DeliveryId, WebhookId};
use crate::store::deliveries::DeliveryStatus;
use crate::store::delivery_log::{self, Delivery, DeliveryFilter};
use crate::store::overview::WebhookState;
use crate::store::repairs;
use crate::store::{self, StoreError, control, webhooks};
use crate::views::{AttemptView, DeliveryDetail, DeliveryView, WebhookView};

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// Only deliveries with this status.
        #[arg(long, value_parser = ["pending", "delivering", "succeeded", "failed"])]
        status: Option<String>,
        /// Only deliveries to this webhook (id).
        #[arg(long)]
        webhook: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Print JSON (the API's delivery objects).
        #[arg(long)]
        json: bool,
    },
    /// Show one delivery with its attempts and the receiver's answers.
    Show {
        id: String,
        /// Print JSON (as the API's get-delivery).
        #[arg(long)]
        json: bool,
        /// Also print the event body sent. It can hold patient data.
        #[arg(long)]
        payload: bool,
    },
    /// Send a failed or succeeded delivery again now: same id, same body.
    Retry { id: String },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List every webhook with its state.
    List {
        /// Print JSON (the API's webhook objects; never a secret).
        #[arg(long)]
        json: bool,
    },
    /// Re-enable a disabled or inactive webhook; its paused deliveries resume.
    Enable { id: String },
}

pub fn run_deliveries(command: DeliveriesCommand, data: &DataDir) -> anyhow::Result<()> {
    let mut conn = open_existing(data)?;
    match command {
        DeliveriesCommand::List {
            status,
            webhook,
            limit,
            json,
        } => {
            let filter = DeliveryFilter {
                webhook_id: webhook
                    .as_deref()
                    .map(|id| parse_id(id, "webhook"))
                    .transpose()?,
                status: status.as_deref().and_then(DeliveryStatus::parse),
                event_type: None,
                before: None,
            };
            let rows = delivery_log::list(&conn, &filter, limit)?;
            if json {
                let items: Vec<DeliveryView> = rows.iter().map(DeliveryView::from).collect();
                print_json(&json!({ "items": items }))?;
            } else {
                print!("{}", delivery_table(&rows));
            }
        }
        DeliveriesCommand::Show { id, json, payload } => {
            let id: DeliveryId = parse_id(&id, "delivery")?;
            let delivery = delivery_log::find(&conn, id)?
                .ok_or_else(|| anyhow::anyhow!("no delivery {id}"))?;
            let attempts = delivery_log::attempts(&conn, id)?;
            let body = if payload {
                delivery_log::payload(&conn, delivery.event_id)?
            } else {
                None
            };
            if json {
                let detail = DeliveryDetail {
                    delivery: DeliveryView::from(&delivery),
                    payload: Some(
                        body.as_deref()
                            .and_then(|b| serde_json::from_str(b).ok())
                            .unwrap_or(Value::Null),
                    ),
                    attempts: attempts.iter().map(AttemptView::from).collect(),
                };
                print_json(&detail)?;
            } else {
                print!("{}", delivery_detail(&conn, &delivery, &attempts)?);
                if let Some(body) = body {
                    println!("\nbody sent:\n{}", clean_lines(&body));
                }
            }
        }
        DeliveriesCommand::Retry { id } => retry(&mut conn, &id)?,
    }
    Ok(())
}

pub fn run_webhooks(command: WebhooksCommand, data: &DataDir) -> anyhow::Result<()> {
    let mut conn = open_existing(data)?;
    match command {
        WebhooksCommand::List { json } => {
            let hooks = webhooks::list_all(&conn)?;
            if json {
                let items: Vec<WebhookView> = hooks.iter().map(WebhookView::from).collect();
                print_json(&json!({ "items": items }))?;
                return Ok(());
            }
            let mut table = Table::new(&[
                ("WEBHOOK", Align::Left),
                ("SURVEY", Align::Left),
                ("STATE", Align::Left),
                ("STREAK", Align::Right),
                ("NAME", Align::Left),
                ("URL", Align::Left),
            ]);
            for hook in &hooks {
                table.row(vec![
                    hook.id.to_string(),
                    hook.survey_id.to_string(),
                    WebhookState::of(hook.is_active, hook.disabled_at)
                        .as_str()
                        .to_owned(),
                    hook.consecutive_failures.to_string(),
                    hook.name.clone(),
                    hook.url.clone(),
                ]);
            }
            print!("{}", table.render());
        }
        WebhooksCommand::Enable { id } => enable(&mut conn, &id)?,
    }
    Ok(())
}

fn retry(conn: &mut Connection, id: &str) -> anyhow::Result<()> {
    let id: DeliveryId = parse_id(id, "delivery")?;
    let (delivery, active) = store::with_transaction(conn, |c| {
        let now = now_ms();
        let delivery = repairs::retry(c, id, now)?;
        control::signal(c, delivery.webhook_id, now)?;
        audit_cli(c, "delivery.retried", "delivery", id.to_string())?;
        let active = webhooks::find(c, delivery.webhook_id)?.is_some_and(|w| w.is_active);
        Ok((delivery, active))
    })
    .map_err(|error| match error {
        StoreError::NotFound => anyhow::anyhow!("no delivery {id}"),
        StoreError::Conflict { message, .. } => anyhow::anyhow!("cannot retry {id}: {message}"),
        other => other.into(),
    })?;
    println!("delivery {id} is pending again");
    if active {
        eprintln!("a running server sends it within a second; a stopped one at its next start");
    } else {
        eprintln!(
            "its webhook is not active, so it waits: `hookd webhooks enable {}`",
            delivery.webhook_id
        );
    }
    Ok(())
}

fn enable(conn: &mut Connection, id: &str) -> anyhow::Result<()> {
    let id: WebhookId = parse_id(id, "webhook")?;
    let enabled = store::with_transaction(conn, |c| {
        let hook = webhooks::find(c, id)?.ok_or(StoreError::NotFound)?;
        if hook.is_active {
            return Ok(None);
        }
        let (hook, notify) = webhooks::enable(c, id, "cli")?;
        control::signal(c, id, now_ms())?;
        for channel in notify.queues() {
            control::signal(c, channel, now_ms())?;
        }
        audit_cli(c, "webhook.enabled", "webhook", id.to_string())?;
        Ok(Some(hook))
    })
    .map_err(|error| match error {
        StoreError::NotFound => anyhow::anyhow!("no webhook {id}"),
        other => other.into(),
    })?;
    match enabled {
        Some(hook) => println!(
            "webhook {id} ({}) is active again; its paused deliveries resume",
            clean(&hook.name)
        ),
        None => println!("webhook {id} is already active"),
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn last_result(d: &Delivery) -> String {
    match (d.last_status_code, &d.last_error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(error)) => error.clone(),
        (None, None) => "-".into(),
    }
}

fn delivery_table(rows: &[Delivery]) -> String {
    let mut table = Table::new(&[
        ("DELIVERY", Align::Left),
        ("WEBHOOK", Align::Left),
        ("EVENT", Align::Left),
        ("STATUS", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("CREATED", Align::Left),
        ("LAST RESULT", Align::Left),
    ]);
    for d in rows {
        table.row(vec![
            d.id.to_string(),
            d.webhook_id.to_string(),
            d.event_type.clone(),
            d.status.as_str().to_owned(),
            d.attempt_count.to_string(),
            format_ms(d.created_at),
            last_result(d),
        ]);
    }
    table.render()
}

fn delivery_detail(
    conn: &Connection,
    d: &Delivery,
    attempts: &[delivery_log::Attempt],
) -> anyhow::Result<String> {
    let hook = webhooks::find(conn, d.webhook_id)?;
    let hook_name = hook.map(|h| format!(" ({})", clean(&h.name)));
    let time = |t: Option<i64>| t.map(format_ms).unwrap_or_else(|| "-".into());
    let next = match d.status {
        DeliveryStatus::Pending => time(d.next_attempt_at),
        _ => "-".into(),
    };
    let mut out = format!(
        "delivery      {}\nwebhook       {}{}\nsurvey        {}\nevent         {} ({})\n\
         status        {}\nattempts      {}\ncreated       {}\ncompleted     {}\n\
         next attempt  {}\nlast result   {}\n",
        d.id,
        d.webhook_id,
        hook_name.unwrap_or_default(),
        d.survey_id,
        d.event_id,
        d.event_type,
        d.status.as_str(),
        d.attempt_count,
        format_ms(d.created_at),
        time(d.completed_at),
        next,
        clean(&last_result(d)),
    );
    for a in attempts {
        let result = match (a.status_code, &a.error) {
            (Some(code), _) => format!("HTTP {code}"),
            (None, Some(error)) => clean(error),
            (None, None) => "no answer".into(),
        };
        out.push_str(&format!(
            "\nattempt {}  {}  {} ms  {}\n",
            a.attempt,
            format_ms(a.started_at),
            a.duration_ms,
            result
        ));
        if let (Some(_), Some(error)) = (a.status_code, &a.error) {
            out.push_str(&format!("  error: {}\n", clean(error)));
        }
        if let Some(body) = a.response_body.as_deref().filter(|b| !b.is_empty()) {
            let note = if a.response_truncated {
                " (first 4,096 bytes)"
            } else {
                ""
            };
            out.push_str(&format!("  response{note}:\n"));
            for line in clean_lines(body).lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    if attempts.is_empty() {
        out.push_str("\nno attempt yet\n");
    }
    Ok(out)
}
