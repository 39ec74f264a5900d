//! Messages (SPEC §10): the emails and SMS of a distribution — an invitation per contact,
//! its reminders — and the admins' notices of disabled webhooks.
//!
//! A message that is to be sent is a job on the delivery queue: an event holding the
//! filled-in message, and its delivery to the channel's reserved queue
//! ([`WebhookId::EMAIL`], [`WebhookId::SMS`]), written in the transaction of the change
//! that causes it. The channel's actor claims, sends, records and retries it like any
//! delivery; the `messages` row says what it is (invitation, reminder, notice) and whose.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::deliveries::{NewEvent, insert_event, insert_job};
use super::webhooks::Webhook;
use super::{Result, StoreError};
use crate::domain::message::{Channel, Filled, Filling, MAX_SMS_CHARS, MessageKind, Template};
use crate::domain::time::{Millis, format_day};
use crate::domain::{ContactId, DeliveryId, EventId, EventType, InvitationId, SurveyId, WebhookId};

/// The retry schedule of every message (SPEC §10), in seconds.
pub const RETRY_DELAYS: [u32; 5] = [1, 5, 30, 300, 1800];

/// The queue of a channel's messages.
pub fn queue_of(channel: Channel) -> Option<WebhookId> {
    match channel {
        Channel::Email => Some(WebhookId::EMAIL),
        Channel::Sms => Some(WebhookId::SMS),
        Channel::Link => None,
    }
}

/// Brings a channel's queue in line with the configuration at start-up: registered and
/// active when the channel is configured (`describe` says where it sends, without any
/// credential), else inactive — its queued messages wait, paused, until it is configured
/// again.
pub fn configure_channel(
    conn: &Connection,
    channel: Channel,
    describe: Option<&str>,
    now: Millis,
) -> Result<()> {
    let Some(queue) = queue_of(channel) else {
        return Ok(());
    };
    let Some(url) = describe else {
        return super::notices::switch_off(conn, queue, now);
    };
    super::notices::reserve_survey(conn, now)?;
    let policy = super::to_json(&RETRY_DELAYS);
    let name = match channel {
        Channel::Email => "email (HOOKD_SMTP_URL)",
        _ => "sms (HOOKD_SMS_URL)",
    };
    conn.execute(
        "INSERT INTO webhooks (id, survey_id, name, url, events, headers, is_active, \
         retry_policy, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, '[]', '{}', 1, ?5, ?6, ?6) \
         ON CONFLICT (id) DO UPDATE SET url = ?4, is_active = 1, retry_policy = ?5, \
         consecutive_failures = 0, disabled_at = NULL, disabled_reason = NULL, \
         failures_when_disabled = NULL, updated_at = ?6",
        params![queue, SurveyId::OPERATIONS, name, url, policy, now],
    )?;
    Ok(())
}

/// Replaces the admins told of disabled webhooks (`HOOKD_ADMIN_EMAIL`).
pub fn configure_admins(conn: &Connection, addresses: &[String]) -> Result<()> {
    conn.execute("DELETE FROM admin_recipients", [])?;
    let mut insert =
        conn.prepare_cached("INSERT OR IGNORE INTO admin_recipients (address) VALUES (?1)")?;
    for address in addresses {
        insert.execute([address])?;
    }
    Ok(())
}

/// What a message needs of a contact.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub do_not_contact: bool,
}

impl Recipient {
    /// Where this channel reaches the contact.
    pub fn address(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Email => self.email.as_deref(),
            Channel::Sms => self.phone.as_deref(),
            Channel::Link => None,
        }
    }
}

/// The recipients among `ids` (unknown ids are left out).
pub fn recipients(conn: &Connection, ids: &[ContactId]) -> Result<HashMap<ContactId, Recipient>> {
    let list = super::id_list(ids);
    let mut stmt = conn.prepare_cached(
        "SELECT id, email, phone, first_name, last_name, do_not_contact FROM contacts \
         WHERE id IN (SELECT unhex(value, '-') FROM json_each(?1))",
    )?;
    let rows = stmt.query_map([list], |row| {
        Ok((
            row.get::<_, ContactId>(0)?,
            Recipient {
                email: row.get(1)?,
                phone: row.get(2)?,
                first_name: row.get(3)?,
                last_name: row.get(4)?,
                do_not_contact: row.get(5)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How a distribution's messages are made.
#[derive(Debug, Clone)]
pub struct Plan {
    pub channel: Channel,
    pub template: Template,
    /// Delays after the invitation, in milliseconds, increasing.
    pub reminders: Vec<Millis>,
    pub survey_title: String,
    /// Links are `{link_base}/r/{token}`.
    pub link_base: String,
}

/// One invitation's messages to write.
#[derive(Debug, Clone, Copy)]
pub struct ForInvitation<'a> {
    pub invitation_id: InvitationId,
    pub survey_id: SurveyId,
    pub recipient: &'a Recipient,
    pub token: &'a str,
    pub expires_at: Millis,
    pub now: Millis,
}

/// The status of a message as the API shows it.
pub fn status_name(outcome: Option<&str>, job: Option<&str>) -> &'static str {
    match (outcome, job) {
        (Some("skipped"), _) => "skipped",
        (Some(_), _) => "cancelled",
        (None, Some("succeeded")) => "sent",
        (None, Some("failed")) => "failed",
        _ => "queued",
    }
}

impl Plan {
    /// The message of `kind` for one contact.
    pub fn fill(
        &self,
        kind: MessageKind,
        recipient: &Recipient,
        token: &str,
        expires_at: Millis,
    ) -> Filled {
        let link = format!("{}/r/{token}", self.link_base);
        let expires = format_day(expires_at);
        self.template.fill(
            kind,
            &Filling {
                first_name: recipient.first_name.as_deref().unwrap_or(""),
                last_name: recipient.last_name.as_deref().unwrap_or(""),
                survey_title: &self.survey_title,
                link: &link,
                expires_at: &expires,
            },
        )
    }

    /// The SMS that would be too long once filled in for this recipient (with a token of
    /// the real length), as the number of characters.
    pub fn overlong_sms(&self, recipient: &Recipient, expires_at: Millis) -> Option<usize> {
        if self.channel != Channel::Sms {
            return None;
        }
        let token = "x".repeat(super::invitations::TOKEN_CHARS);
        [MessageKind::Invitation, MessageKind::Reminder]
            .into_iter()
            .map(|kind| {
                self.fill(kind, recipient, &token, expires_at)
                    .text
                    .chars()
                    .count()
            })
            .find(|&n| n > MAX_SMS_CHARS)
    }

    /// Writes an invitation's message and its reminders: queued, or `skipped` for a contact
    /// who asked not to be contacted; a reminder that would fall after the link expires is
    /// written `cancelled`. Returns the invitation message's status.
    pub fn write(&self, conn: &Connection, to: ForInvitation<'_>) -> Result<&'static str> {
        let queue = queue_of(self.channel).expect("a plan is for a sending channel");
        let insert = |kind, due_at, job, outcome| {
            insert_message(
                conn,
                &MessageRow {
                    invitation_id: Some(to.invitation_id),
                    channel: self.channel,
                    kind,
                    due_at,
                    job,
                    outcome,
                    created_at: to.now,
                },
            )
        };
        let schedule = std::iter::once((MessageKind::Invitation, to.now)).chain(
            self.reminders
                .iter()
                .map(|delay| (MessageKind::Reminder, to.now + delay)),
        );
        for (kind, due_at) in schedule {
            if to.recipient.do_not_contact {
                insert(kind, due_at, None, Some("skipped"))?;
            } else if due_at >= to.expires_at {
                insert(kind, due_at, None, Some("cancelled"))?;
            } else {
                let address = to
                    .recipient
                    .address(self.channel)
                    .ok_or(StoreError::Invalid {
                        field: "contactIds",
                        message: format!("a contact has no {} address", self.channel.as_str()),
                    })?;
                let filled = self.fill(kind, to.recipient, to.token, to.expires_at);
                let event = message_event(self.channel, to.survey_id, &[address], &filled, to.now);
                insert_event(conn, &event)?;
                let job = insert_job(conn, queue, &event, due_at)?;
                insert(kind, due_at, Some(job), None)?;
            }
        }
        Ok(if to.recipient.do_not_contact {
            "skipped"
        } else {
            "queued"
        })
    }
}

/// The stored event of a message: the exact body an SMS gateway gets, or what an email is
/// built from at send time.
fn message_event(
    channel: Channel,
    survey_id: SurveyId,
    to: &[&str],
    filled: &Filled,
    now: Millis,
) -> NewEvent {
    let (event_type, payload) = match channel {
        Channel::Sms => (
            EventType::SmsMessage,
            json!({"to": to[0], "text": filled.text}),
        ),
        _ => (
            EventType::EmailMessage,
            json!({"to": to, "subject": filled.subject, "text": filled.text, "html": filled.html}),
        ),
    };
    NewEvent {
        id: EventId::new(),
        survey_id,
        event_type,
        payload: payload.to_string(),
        created_at: now,
    }
}

/// Queues the email to the admins about a disabled webhook, when mail and admins are
/// configured; whether it did. Name, URL and reason only: no patient data.
pub fn admin_notice(
    conn: &Connection,
    webhook: &Webhook,
    reason: &str,
    now: Millis,
) -> Result<bool> {
    if !super::notices::is_active(conn, WebhookId::EMAIL)? {
        return Ok(false);
    }
    let admins: Vec<String> = conn
        .prepare_cached("SELECT address FROM admin_recipients ORDER BY address")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if admins.is_empty() {
        return Ok(false);
    }
    let text = format!(
        "hookd disabled the webhook \"{name}\" ({id}) of survey {survey}.\n\n\
         URL: {url}\nReason: {reason}\n\nIts deliveries are kept, paused. Once the receiver \
         works again, re-enable it on the operator page, with `hookd webhooks enable {id}`, \
         or with PATCH isActive: true; the paused deliveries are then sent, oldest first.\n",
        name = webhook.name,
        id = webhook.id,
        survey = webhook.survey_id,
        url = webhook.url,
    );
    let filled = Filled {
        subject: Some(format!(
            "hookd: webhook \"{}\" disabled",
            webhook.name.replace(['\r', '\n'], " ")
        )),
        text,
        html: None,
    };
    let to: Vec<&str> = admins.iter().map(String::as_str).collect();
    let event = message_event(Channel::Email, SurveyId::OPERATIONS, &to, &filled, now);
    insert_event(conn, &event)?;
    let job = insert_job(conn, WebhookId::EMAIL, &event, now)?;
    insert_message(
        conn,
        &MessageRow {
            invitation_id: None,
            channel: Channel::Email,
            kind: MessageKind::Notice,
            due_at: now,
            job: Some(job),
            outcome: None,
            created_at: now,
        },
    )?;
    Ok(true)
}

/// A `messages` row: its id is its job's, or a new one when it has no job.
struct MessageRow {
    invitation_id: Option<InvitationId>,
    channel: Channel,
    kind: MessageKind,
    due_at: Millis,
    job: Option<DeliveryId>,
    /// `skipped` or `cancelled` for a message that never goes to the queue.
    outcome: Option<&'static str>,
    created_at: Millis,
}

fn insert_message(conn: &Connection, row: &MessageRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO messages (id, invitation_id, channel, kind, due_at, delivery_id, outcome, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        row.job.unwrap_or_default(),
        row.invitation_id,
        row.channel.as_str(),
        row.kind.as_str(),
        row.due_at,
        row.job,
        row.outcome,
        row.created_at
    ])?;
    Ok(())
}

/// A completed response cancels the reminders still waiting for the contact's
/// invitations to the survey. A reminder already being sent goes out. Returns how many
/// were cancelled. It runs with every completion that names a contact, so each job is
/// checked by its id (`EXISTS`): `delivery_id IN (SELECT ... status = 'pending')` would
/// read every pending delivery of every webhook.
pub fn cancel_reminders(
    conn: &Connection,
    survey_id: SurveyId,
    contact_id: ContactId,
) -> Result<usize> {
    let cancelled: Vec<DeliveryId> = conn
        .prepare_cached(
            "UPDATE messages SET delivery_id = NULL, outcome = 'cancelled' \
             WHERE kind = 'reminder' AND delivery_id IS NOT NULL \
               AND invitation_id IN (SELECT id FROM invitations WHERE survey_id = ?1 AND contact_id = ?2) \
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.id = messages.delivery_id AND d.status = 'pending') \
             RETURNING id",
        )?
        .query_map(params![survey_id, contact_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    off_the_queue(conn, &cancelled)?;
    Ok(cancelled.len())
}

/// A contact who now asks not to be contacted is sent nothing more: the messages still
/// waiting for any of their invitations (reminders, and invitations held back by the
/// channel's pace) become `skipped`. One already being sent goes out. Returns how many.
pub fn skip_for_contact(conn: &Connection, contact_id: ContactId) -> Result<usize> {
    let skipped: Vec<DeliveryId> = conn
        .prepare_cached(
            "UPDATE messages SET delivery_id = NULL, outcome = 'skipped' \
             WHERE delivery_id IS NOT NULL \
               AND invitation_id IN (SELECT id FROM invitations WHERE contact_id = ?1) \
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.id = messages.delivery_id AND d.status = 'pending') \
             RETURNING id",
        )?
        .query_map([contact_id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    off_the_queue(conn, &skipped)?;
    Ok(skipped.len())
}

/// Deletes the jobs (and their events) of messages that will not be sent.
fn off_the_queue(conn: &Connection, jobs: &[DeliveryId]) -> Result<()> {
    for id in jobs {
        let event: Option<EventId> = conn
            .prepare_cached("DELETE FROM deliveries WHERE id = ?1 RETURNING event_id")?
            .query_row([id], |row| row.get(0))
            .optional()?;
        if let Some(event) = event {
            conn.prepare_cached("DELETE FROM events WHERE id = ?1")?
                .execute([event])?;
        }
    }
    Ok(())
}

mod status;
pub use status::{DistributionState, InvitationState, MessageState, distribution};
