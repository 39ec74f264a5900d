//! One delivery actor per active webhook: it owns that webhook's schedule.
//!
//! The actor claims due deliveries (at most `max_in_flight` at once, so the same delivery
//! is never in flight twice), sends each on its own task, and hands each outcome to the
//! store's group commit without waiting for it. Between claims it sleeps until the next
//! delivery falls due, and a [`WebhookMsg::Wake`] rouses it at once when new deliveries are
//! queued. Claims, sends and records report back as notices, so the actor never blocks on
//! I/O and always has an exact picture of what it has in flight.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::{AbortHandle, JoinHandle};

use super::client::{AttemptReport, Target};
use super::{DeliveryContext, attempt_record, next_step};
use crate::domain::DeliveryId;
use crate::domain::time::{Millis, now_ms};
use crate::store::deliveries::{self, AttemptRecord, ClaimedDelivery, NextStep, RecordEffect};
use crate::store::webhooks::Webhook;

/// Messages of a delivery actor: commands, then notices from its own tasks.
pub enum WebhookMsg {
    /// Deliveries may have become due: look for them now.
    Wake,
    /// The webhook's settings changed: use them from the next attempt on.
    Reconfigure(Box<Webhook>),
    /// Stop claiming; once every attempt in flight is recorded, reply and stop.
    Drain(Option<RpcReplyPort<()>>),
    /// Notice: a claim came back with these deliveries and the next due time after them.
    Claimed(Result<(Vec<ClaimedDelivery>, Option<Millis>), String>),
    /// Notice: an attempt finished.
    AttemptFinished(Box<(ClaimedDelivery, AttemptReport)>),
    /// Notice: a batch of attempt records was committed (or failed to be), with the
    /// earliest retry time among them.
    Recorded(Result<(RecordEffect, Option<Millis>), String>),
    /// Test hook: fail as if a bug struck.
    #[cfg(test)]
    Panic,
}

pub struct WebhookActor;

/// A pending `send_after` wake-up.
type Timer = JoinHandle<Result<(), ractor::MessagingErr<WebhookMsg>>>;

/// Everything the actor owns.
pub struct WebhookState {
    ctx: DeliveryContext,
    webhook: Webhook,
    /// `None` when the stored URL no longer passes the policy (each attempt then fails).
    target: Result<Target, String>,
    in_flight: InFlight,
    /// Claimed and waiting for a free slot: a prefetch of up to `max_in_flight`, so a slot
    /// that frees starts its next send at once instead of waiting for a claim's commit.
    queued: VecDeque<ClaimedDelivery>,
    /// A claim is under way; wakes meanwhile set `rewake` instead of claiming again.
    claiming: bool,
    rewake: bool,
    /// Outcomes waiting to be written; they go in one store job while none is under way,
    /// so a busy webhook records many attempts per job.
    unrecorded: Vec<AttemptRecord>,
    /// A record job is under way.
    recording: bool,
    /// The pending wake-up timer and when it fires.
    timer: Option<(Millis, Timer)>,
    /// No more claims: the webhook was disabled (410, failures) or the server is stopping.
    stopping: bool,
    drained: Vec<RpcReplyPort<()>>,
}

/// The send tasks in flight. Dropping it (the actor stopped or died) aborts them, so a
/// restarted actor can never send a delivery its predecessor is still sending.
#[derive(Default)]
struct InFlight(HashMap<DeliveryId, AbortHandle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

impl Actor for WebhookActor {
    type Msg = WebhookMsg;
    type State = WebhookState;
    type Arguments = (DeliveryContext, Webhook);

    async fn pre_start(
        &self,
        _me: ActorRef<WebhookMsg>,
        (ctx, webhook): Self::Arguments,
    ) -> Result<WebhookState, ActorProcessingErr> {
        let target = ctx.target(&webhook);
        Ok(WebhookState {
            ctx,
            webhook,
            target,
            in_flight: InFlight::default(),
            queued: VecDeque::new(),
            claiming: false,
            rewake: false,
            unrecorded: Vec::new(),
            recording: false,
            timer: None,
            stopping: false,
            drained: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<WebhookMsg>,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        state.claim(&me);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<WebhookMsg>,
        msg: WebhookMsg,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebhookMsg::Wake => state.claim(&me),
            WebhookMsg::Reconfigure(webhook) => {
                state.target = state.ctx.target(&webhook);
                state.webhook = *webhook;
                state.claim(&me);
            }
            WebhookMsg::Drain(reply) => {
                state.stop_claiming();
                state.drained.extend(reply);
            }
            WebhookMsg::Claimed(result) => state.claimed(&me, result),
            WebhookMsg::AttemptFinished(finished) => {
                let (delivery, report) = *finished;
                state.finished(&me, delivery, report);
            }
            WebhookMsg::Recorded(result) => {
                state.recording = false;
                state.flush_records(&me);
                match result {
                    Ok((effect, _)) if effect.webhook_disabled => {
                        tracing::warn!(webhook_id = %state.webhook.id, "webhook disabled; its pending deliveries are paused until it is re-enabled");
                        state.stop_claiming();
                    }
                    // The timer may have fired before this record made the delivery
                    // claimable again; make sure a wake follows the commit.
                    Ok((_, Some(retry_at))) => state.wake_at(&me, retry_at),
                    Ok(_) => {}
                    Err(error) => {
                        // The delivery stays claimed in the store; it is sent again after a
                        // restart releases the claim. Nothing is lost.
                        tracing::error!(webhook_id = %state.webhook.id, %error, "could not record an attempt");
                    }
                }
            }
            #[cfg(test)]
            WebhookMsg::Panic => panic!("delivery actor panicked on request"),
        }
        if state.stopping && state.is_idle() {
            for reply in state.drained.drain(..) {
                let _ = reply.send(());
            }
            me.stop(None);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<WebhookMsg>,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, timer)) = state.timer.take() {
            timer.abort();
        }
        let abandoned: Vec<DeliveryId> = state
            .in_flight
            .0
            .keys()
            .copied()
            .chain(state.queued.drain(..).map(|d| d.id))
            .collect();
        state.in_flight = InFlight::default();
        if !abandoned.is_empty() {
            state
                .ctx
                .store
                .write(move |conn| deliveries::release(conn, &abandoned))
                .await?;
        }
        Ok(())
    }
}

impl WebhookState {
    fn is_idle(&self) -> bool {
        self.in_flight.0.is_empty()
            && self.queued.is_empty()
            && self.unrecorded.is_empty()
            && !self.recording
            && !self.claiming
    }

    /// Claims as many due deliveries as there are free slots, unless a claim is under way.
    fn claim(&mut self, me: &ActorRef<WebhookMsg>) {
        if self.stopping {
            return;
        }
        let free = self.room();
        if self.claiming || free == 0 {
            self.rewake = true;
            return;
        }
        self.claiming = true;
        self.rewake = false;
        let (store, webhook_id, me) = (self.ctx.store.clone(), self.webhook.id, me.clone());
        let lease_until = self.ctx.lease_until(now_ms());
        tokio::spawn(async move {
            let result = store
                .write_relaxed(move |conn| {
                    let now = now_ms();
                    let claimed = deliveries::claim_due(conn, webhook_id, now, lease_until, free)?;
                    Ok((claimed, deliveries::next_due_at(conn, webhook_id)?))
                })
                .await
                .map_err(|e| e.to_string());
            let _ = me.cast(WebhookMsg::Claimed(result));
        });
    }

    fn claimed(
        &mut self,
        me: &ActorRef<WebhookMsg>,
        result: Result<(Vec<ClaimedDelivery>, Option<Millis>), String>,
    ) {
        self.claiming = false;
        let (claimed, next_due) = match result {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(webhook_id = %self.webhook.id, %error, "could not claim deliveries; trying again shortly");
                self.wake_at(me, now_ms() + 1000);
                return;
            }
        };
        if self.stopping {
            // Paused while the claim was under way: hand the deliveries back untouched.
            self.release(claimed);
            return;
        }
        if claimed.len() as u32 >= self.room() {
            self.rewake = true; // a full batch: more may be due
        }
        self.queued.extend(claimed);
        self.start_sends(me);
        if let Some(at) = next_due {
            self.wake_at(me, at);
        }
        if self.rewake {
            self.claim(me);
        }
    }

    /// Claims this actor may still hold: the in-flight slots plus as many queued.
    fn room(&self) -> u32 {
        let held = self.in_flight.0.len() + self.queued.len();
        (2 * self.ctx.max_in_flight.get()).saturating_sub(held as u32)
    }

    /// Fills the free in-flight slots from the queue.
    fn start_sends(&mut self, me: &ActorRef<WebhookMsg>) {
        while self.in_flight.0.len() < self.ctx.max_in_flight.get() as usize {
            let Some(delivery) = self.queued.pop_front() else {
                break;
            };
            self.send(me, delivery);
        }
    }

    /// Stops claiming and hands the queued (not yet sent) deliveries back.
    fn stop_claiming(&mut self) {
        self.stopping = true;
        let queued: Vec<ClaimedDelivery> = self.queued.drain(..).collect();
        self.release(queued);
    }

    /// Returns claimed deliveries to `pending`, untouched.
    fn release(&mut self, claimed: Vec<ClaimedDelivery>) {
        if claimed.is_empty() {
            return;
        }
        let ids: Vec<DeliveryId> = claimed.iter().map(|d| d.id).collect();
        let store = self.ctx.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store
                .write(move |conn| deliveries::release(conn, &ids))
                .await
            {
                tracing::error!(%error, "could not release claims; the next start releases them");
            }
        });
    }

    fn send(&mut self, me: &ActorRef<WebhookMsg>, delivery: ClaimedDelivery) {
        let (sender, target, me) = (self.ctx.sender.clone(), self.target.clone(), me.clone());
        let id = delivery.id;
        let task = tokio::spawn(async move {
            let report = match &target {
                Ok(target) => {
                    sender
                        .attempt(target, delivery.id, &delivery.event_type, &delivery.payload)
                        .await
                }
                Err(message) => AttemptReport::refused(delivery.id, message),
            };
            let _ = me.cast(WebhookMsg::AttemptFinished(Box::new((delivery, report))));
        });
        self.in_flight.0.insert(id, task.abort_handle());
    }

    fn finished(
        &mut self,
        me: &ActorRef<WebhookMsg>,
        delivery: ClaimedDelivery,
        report: AttemptReport,
    ) {
        self.in_flight.0.remove(&delivery.id);
        let next = next_step(&report, &delivery, &self.webhook.retry_policy);
        let outcome = match &next {
            NextStep::Succeeded => "succeeded",
            NextStep::RetryAt(at) => {
                self.wake_at(me, *at);
                "retry"
            }
            NextStep::Failed => "failed",
            NextStep::DisableWebhook(_) => {
                tracing::warn!(webhook_id = %self.webhook.id, "receiver answered 410 Gone; disabling the webhook");
                self.stop_claiming();
                "disabled"
            }
        };
        self.ctx.telemetry.attempt_finished(
            outcome,
            Duration::from_millis(u64::from(report.duration_ms)),
        );
        tracing::debug!(webhook_id = %self.webhook.id, delivery_id = %delivery.id, status = ?report.status_code, outcome, "attempt finished");
        self.unrecorded
            .push(attempt_record(&report, &delivery, &self.webhook, next));
        self.flush_records(me);
        self.start_sends(me);
        // Claim again once the prefetch runs low, so claims stay batched.
        if self.rewake && self.queued.len() <= self.ctx.max_in_flight.get() as usize / 2 {
            self.claim(me);
        }
    }

    /// Hands every waiting outcome to the store in one job, unless a job is under way (its
    /// notice flushes what arrived meanwhile).
    fn flush_records(&mut self, me: &ActorRef<WebhookMsg>) {
        if self.recording || self.unrecorded.is_empty() {
            return;
        }
        self.recording = true;
        let records = std::mem::take(&mut self.unrecorded);
        let retry_at = records
            .iter()
            .filter_map(|r| match r.next {
                NextStep::RetryAt(at) => Some(at),
                _ => None,
            })
            .min();
        let (store, limit, me) = (
            self.ctx.store.clone(),
            self.ctx.auto_disable_after,
            me.clone(),
        );
        tokio::spawn(async move {
            let result = store
                .write_relaxed(move |conn| {
                    deliveries::record_attempts(conn, &records, limit, now_ms())
                })
                .await
                .map(|effect| (effect, retry_at))
                .map_err(|e| e.to_string());
            let _ = me.cast(WebhookMsg::Recorded(result));
        });
    }

    /// Makes sure the actor is woken no later than `at`.
    fn wake_at(&mut self, me: &ActorRef<WebhookMsg>, at: Millis) {
        if self.stopping {
            return;
        }
        if let Some((current, timer)) = &self.timer {
            if *current <= at && !timer.is_finished() {
                return;
            }
            timer.abort();
        }
        let delay = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        self.timer = Some((at, me.send_after(delay, || WebhookMsg::Wake)));
    }
}
