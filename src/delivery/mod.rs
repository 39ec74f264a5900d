//! The delivery engine: a supervisor actor runs one [`actor::WebhookActor`] per active
//! webhook. Each actor owns its webhook's schedule: it claims due deliveries from the
//! store, sends them through the shared [`client::Sender`] (per-host limit, signing, SSRF),
//! and records each outcome in the store's group commit.
//!
//! Pure policies live beside it: [`retry`] (when to try again), [`signing`].

pub mod actor;
pub mod client;
pub mod engine;
pub mod mail;
pub mod retry;
pub mod signing;
pub mod supervisor;
pub mod window;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;

use crate::config::messaging::SmsSettings;
use crate::domain::time::{Millis, now_ms};
use crate::domain::{Queue, WebhookUrl};
use crate::store::Store;
use crate::store::claims::ClaimedDelivery;
use crate::store::deliveries::{AttemptRecord, NextStep};
use crate::store::webhooks::Webhook;
use crate::telemetry::Telemetry;
use client::{AttemptReport, RequestStyle, Route, Sender, Target};

/// Added to twice the delivery timeout to make a claim's lease.
const LEASE_MARGIN_MS: Millis = 10_000;

/// What every delivery actor shares: read-only settings and handles, and one pool of spare
/// claim slots (the actors' only shared count, lent and returned through [`window::Loan`]).
#[derive(Clone)]
pub struct DeliveryContext {
    pub store: Store,
    pub sender: Sender,
    pub telemetry: Telemetry,
    /// `HOOKD_AUTO_DISABLE_AFTER` (0 = never).
    pub auto_disable_after: u32,
    /// Attempts one webhook may have in flight.
    pub max_in_flight: NonZeroU32,
    /// The claim slots busy webhooks borrow beyond their own windows.
    pub spare_slots: Arc<window::SpareSlots>,
    /// Per-attempt timeout; also bounds how long a claim is leased.
    pub delivery_timeout: Duration,
    /// The SSRF policy, to parse stored URLs again with today's configuration.
    pub network: crate::domain::ssrf::NetworkPolicy,
    /// The mail server's client, when `HOOKD_SMTP_URL` is set (the email queue's sender).
    pub mailer: Option<mail::Mailer>,
    /// The SMS gateway, when `HOOKD_SMS_URL` is set.
    pub sms: Option<SmsSettings>,
    /// `HOOKD_MESSAGE_RATE_LIMIT`: messages per second to each channel (`None`: no limit).
    pub message_rate_limit: Option<NonZeroU32>,
}

impl DeliveryContext {
    /// Until when a claim made at `now` is leased. An attempt lasts at most the timeout, so
    /// twice that and a margin is ample; an actor renews the leases of claims it still
    /// holds (waiting for a slot or its host's rate limit) when the supervisor's sweep finds
    /// them past it, and a claim nobody holds is released then.
    pub fn lease_until(&self, now: Millis) -> Millis {
        now + 2 * self.delivery_timeout.as_millis() as Millis + LEASE_MARGIN_MS
    }

    /// The request target of a webhook as stored; an error if its URL no longer passes.
    pub fn target(&self, webhook: &Webhook) -> Result<Target, String> {
        Ok(Target {
            url: WebhookUrl::parse(&webhook.url, &self.network)?,
            secrets: webhook.signing_secrets(),
            headers: webhook.headers.clone(),
            style: RequestStyle::Webhook,
        })
    }

    /// Where a queue's jobs go now: a webhook's URL, the SMS gateway or the mail server
    /// as configured at this start (a channel left unset refuses its jobs).
    pub fn route(&self, webhook: &Webhook) -> Route {
        match webhook.id.queue() {
            Queue::Email if self.mailer.is_some() => Route::Mail,
            Queue::Email => Route::Refuse("no mail server is configured (HOOKD_SMTP_URL)".into()),
            Queue::Sms => match &self.sms {
                Some(sms) => Route::Send(Target {
                    url: sms.url.clone(),
                    secrets: webhook.signing_secrets(),
                    headers: webhook.headers.clone(),
                    style: RequestStyle::SmsGateway {
                        token: sms.token.clone(),
                    },
                }),
                None => Route::Refuse("no SMS gateway is configured (HOOKD_SMS_URL)".into()),
            },
            Queue::Webhook | Queue::Operations => Route::from(self.target(webhook)),
        }
    }
}

/// A message refused for good by its channel (SPEC §10): a permanent SMTP rejection (5xx),
/// or a gateway's 4xx other than 429. It fails at once; retrying would not help.
fn refused_for_good(report: &AttemptReport, queue: Queue) -> bool {
    match queue {
        Queue::Email => report.permanent,
        Queue::Sms => report
            .status_code
            .is_some_and(|code| (400..500).contains(&code) && code != 429),
        Queue::Webhook | Queue::Operations => false,
    }
}

/// Decides what follows an attempt: success, a retry at a time, failure, or (410) disabling
/// the webhook — except hookd's own channels, which are never disabled (a 410 from one is
/// a failure like any other). Test deliveries are never retried, nor messages their
/// channel refused for good.
pub fn next_step(
    report: &AttemptReport,
    delivery: &ClaimedDelivery,
    webhook: &Webhook,
) -> NextStep {
    let policy = &webhook.retry_policy;
    if report.succeeded() {
        return NextStep::Succeeded;
    }
    let queue = webhook.id.queue();
    if report.status_code == Some(410) && !delivery.is_test && queue.may_be_disabled() {
        return NextStep::DisableWebhook("receiver answered 410 Gone".into());
    }
    if delivery.is_test || refused_for_good(report, queue) {
        return NextStep::Failed;
    }
    let failure = delivery.attempt_count + 1 - delivery.schedule_base;
    let jitter = rand::rng().random_range(-1.0..=1.0);
    match retry::next_delay(policy, failure, jitter, report.retry_after) {
        Some(delay) => NextStep::RetryAt(now_ms() + delay.as_millis() as Millis),
        None => NextStep::Failed,
    }
}

/// The store record of an attempt.
pub fn attempt_record(
    report: &AttemptReport,
    delivery: &ClaimedDelivery,
    webhook: &Webhook,
    next: NextStep,
) -> AttemptRecord {
    AttemptRecord {
        delivery_id: delivery.id,
        claim_token: delivery.claim_token,
        webhook_id: webhook.id,
        attempt: delivery.attempt_count + 1,
        started_at: report.started_at,
        duration_ms: report.duration_ms(),
        status_code: report.status_code,
        error: report.error.clone(),
        response_body: report.response_body.clone(),
        response_truncated: report.response_truncated,
        next,
        is_test: delivery.is_test,
    }
}

#[cfg(test)]
mod tests;
