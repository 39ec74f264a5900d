//! One delivery actor per active webhook: it owns that webhook's schedule.
//!
//! The actor claims due deliveries (within its claim window, [`super::window`]), sends each
//! on its own task (at most `max_in_flight` at once, one for a FIFO webhook, so the same
//! delivery is never in flight twice) and hands each outcome to the store's group commit
//! without waiting for it; while more is due than it had room for, the job that writes
//! outcomes also claims what they make room for, so a busy webhook pays one commit per
//! round instead of two. Between claims it sleeps until the next delivery falls due, and a
//! [`WebhookMsg::Wake`] rouses it at once when new deliveries are queued. Claims, sends,
//! records and releases report back as notices, so the actor never blocks on I/O and
//! always knows exactly which claims it holds — which is what lets the supervisor's lease
//! sweep ask it ([`WebhookMsg::Expired`]).
//!
//! Its attempts read the webhook's settings from a [`Route`] the actor keeps current: a
//! changed secret, a removed one or a stop applies to every request not yet sent.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

mod outcomes;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use super::DeliveryContext;
use super::client::{AttemptReport, Route};
use super::supervisor::SupervisorMsg;
use super::window::{Loan, own_window};
use crate::domain::time::{Millis, now_ms};
use crate::domain::{DeliveryId, DeliveryOrder, Queue};
use crate::store::claims::{self, Claim, Claimed, ClaimedDelivery, ExpiredClaim};
use crate::store::deliveries::{AttemptRecord, RecordEffect};
use crate::store::webhooks::Webhook;

/// How long to wait before writing outcomes again after the store refused them.
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// Messages of a delivery actor: commands, then notices from its own tasks.
pub enum WebhookMsg {
    /// Deliveries may have become due: look for them now.
    Wake,
    /// The wake-up this actor set for `at` fired.
    TimerFired(Millis),
    /// The webhook's settings changed: use them for every request not yet sent, then reply.
    Reconfigure(Box<Webhook>, Option<RpcReplyPort<()>>),
    /// Stop claiming and sending; once every attempt in flight is recorded, reply and stop.
    Drain(Option<RpcReplyPort<()>>),
    /// The lease sweep found these claims of this webhook past their lease: renew the ones
    /// still held, settle the others.
    Expired(Vec<ExpiredClaim>),
    /// Notice: a claim came back with these deliveries and the next due time after them.
    Claimed(Result<Claimed, String>),
    /// Notice: an attempt finished; `None` when it was withdrawn before anything was sent.
    AttemptFinished(Box<(ClaimedDelivery, Option<AttemptReport>)>),
    /// Notice: a batch of attempt records was committed, or failed to be (the records
    /// come back to be written again).
    Recorded(Result<Recorded, (String, Vec<AttemptRecord>)>),
    /// Notice: a release (or lease renewal) job finished.
    Released,
    /// Write the outcomes the store refused last time.
    RetryRecords,
    /// Test hook: fail as if a bug struck.
    #[cfg(test)]
    Panic,
}

/// What a record job did: its effect, the earliest retry among its records, and for a
/// FIFO webhook the claim of its next queue head made in the same job.
pub struct Recorded {
    effect: RecordEffect,
    retry_at: Option<Millis>,
    claimed: Option<Claimed>,
}

pub struct WebhookActor;

/// A pending `send_after` wake-up.
type Timer = JoinHandle<Result<(), ractor::MessagingErr<WebhookMsg>>>;

/// An actor's one pending wake-up and when it fires. It is forgotten only when its own
/// message ([`WebhookMsg::TimerFired`]) is handled, in order with everything else. Asking
/// its task whether it had finished raced with the message it had already sent: a timer
/// that had fired was taken for pending, and its actor slept with deliveries due.
#[derive(Default)]
struct WakeTimer(Option<(Millis, Timer)>);

impl WakeTimer {
    /// Whether the pending timer wakes the actor by `at`; a later one is cancelled.
    fn covers(&mut self, at: Millis) -> bool {
        match &self.0 {
            Some((current, _)) if *current <= at => true,
            Some((_, timer)) => {
                timer.abort();
                self.0 = None;
                false
            }
            None => false,
        }
    }

    fn set(&mut self, at: Millis, timer: Timer) {
        self.cancel();
        self.0 = Some((at, timer));
    }

    /// The timer set for `at` fired (a message of a timer replaced since is ignored).
    fn fired(&mut self, at: Millis) {
        if self.0.as_ref().is_some_and(|(current, _)| *current == at) {
            self.0 = None;
        }
    }

    fn cancel(&mut self) {
        if let Some((_, timer)) = self.0.take() {
            timer.abort();
        }
    }
}

/// Everything the actor owns.
pub struct ActorState {
    /// The engine's context, shared by every actor.
    ctx: Arc<DeliveryContext>,
    webhook: Webhook,
    /// To wake the operations channel when a record of this actor queued a notice.
    supervisor: ActorRef<SupervisorMsg>,
    /// What its attempts read when they send (see the module documentation).
    route: watch::Sender<Arc<Route>>,
    /// A message channel's pace (`HOOKD_MESSAGE_RATE_LIMIT`): each send waits its turn.
    pace: Option<Arc<DefaultDirectRateLimiter>>,
    in_flight: InFlight,
    /// Claimed and waiting for a free slot: a prefetch of up to `max_in_flight`, so a slot
    /// that frees starts its next send at once instead of waiting for a claim's commit.
    queued: VecDeque<ClaimedDelivery>,
    /// A claim is under way; wakes meanwhile set `rewake` instead of claiming again.
    claiming: bool,
    /// How many deliveries the claim under way (or the last one) asked for.
    asked: u32,
    /// More is probably due than there is room for: the last claim found as many as it
    /// asked for, or a claim was wanted while the window was full.
    backlog: bool,
    /// Claim slots borrowed beyond the own window while `backlog` lasts (and while the
    /// claims in them are unrecorded).
    loan: Loan,
    /// That claim rides in the record job under way (FIFO).
    claiming_with_records: bool,
    rewake: bool,
    /// Outcomes waiting to be written; they go in one store job while none is under way,
    /// so a busy webhook records many attempts per job.
    unrecorded: Vec<AttemptRecord>,
    /// The claims of the record job under way (empty: none is).
    recording: Vec<Claim>,
    /// The store refused the last record job; it is written again after [`RECORD_RETRY`].
    record_retry_pending: bool,
    /// Release and renewal jobs under way.
    releasing: usize,
    /// The pending wake-up timer.
    timer: WakeTimer,
    /// No more claims: the webhook was disabled (410, failures) or told to drain.
    stopping: bool,
    drained: Vec<RpcReplyPort<()>>,
}

/// The send tasks in flight and their claims. Dropping it (the actor stopped or died)
/// aborts them, so a restarted actor can never send a delivery its predecessor is still
/// sending.
#[derive(Default)]
struct InFlight(HashMap<DeliveryId, (Claim, AbortHandle)>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for (_, task) in self.0.values() {
            task.abort();
        }
    }
}

impl Actor for WebhookActor {
    type Msg = WebhookMsg;
    type State = ActorState;
    type Arguments = (Arc<DeliveryContext>, Webhook, ActorRef<SupervisorMsg>);

    async fn pre_start(
        &self,
        _me: ActorRef<WebhookMsg>,
        (ctx, webhook, supervisor): Self::Arguments,
    ) -> Result<ActorState, ActorProcessingErr> {
        let (route, _) = watch::channel(Arc::new(ctx.route(&webhook)));
        let pace = match (webhook.id.queue(), ctx.message_rate_limit) {
            (Queue::Email | Queue::Sms, Some(rate)) => Some(Arc::new(RateLimiter::direct(
                Quota::per_second(rate).allow_burst(NonZeroU32::MIN),
            ))),
            _ => None,
        };
        let loan = Loan::new(ctx.spare_slots.clone());
        Ok(ActorState {
            pace,
            ctx,
            webhook,
            supervisor,
            route,
            in_flight: InFlight::default(),
            queued: VecDeque::new(),
            claiming: false,
            asked: 0,
            backlog: false,
            loan,
            claiming_with_records: false,
            rewake: false,
            unrecorded: Vec::new(),
            recording: Vec::new(),
            record_retry_pending: false,
            releasing: 0,
            timer: WakeTimer::default(),
            stopping: false,
            drained: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<WebhookMsg>,
        state: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.claim(&me);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<WebhookMsg>,
        msg: WebhookMsg,
        state: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebhookMsg::Wake => state.claim(&me),
            WebhookMsg::TimerFired(at) => {
                state.timer_fired(at);
                state.claim(&me);
            }
            WebhookMsg::Reconfigure(webhook, reply) => {
                state.reconfigure(&me, *webhook);
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            WebhookMsg::Drain(reply) => {
                state.stop_claiming(&me);
                state.drained.extend(reply);
            }
            WebhookMsg::Expired(claims) => state.expired(&me, claims),
            WebhookMsg::Claimed(result) => {
                state.claiming = false;
                state.claimed(&me, result);
            }
            WebhookMsg::AttemptFinished(finished) => {
                let (delivery, report) = *finished;
                state.finished(&me, delivery, report);
            }
            WebhookMsg::Recorded(result) => state.recorded(&me, result),
            WebhookMsg::Released => state.releasing -= 1,
            WebhookMsg::RetryRecords => {
                state.record_retry_pending = false;
                state.flush_records(&me);
            }
            #[cfg(test)]
            WebhookMsg::Panic => panic!("delivery actor panicked on request"),
        }
        state.fit_loan(); // a backlog that ended returns its slots even to an idle actor
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
        state: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.route.send_replace(Arc::new(Route::Withdrawn));
        state.timer.cancel();
        let abandoned: Vec<Claim> = state
            .in_flight
            .0
            .values()
            .map(|(claim, _)| *claim)
            .chain(state.queued.drain(..).map(|d| d.claim()))
            .collect();
        state.in_flight = InFlight::default();
        if !abandoned.is_empty() {
            state
                .ctx
                .store
                .write(move |conn| claims::release(conn, &abandoned))
                .await?;
        }
        Ok(())
    }
}

impl ActorState {
    fn is_idle(&self) -> bool {
        self.in_flight.0.is_empty()
            && self.queued.is_empty()
            && self.unrecorded.is_empty()
            && self.recording.is_empty()
            && !self.claiming
            && self.releasing == 0
    }

    fn is_fifo(&self) -> bool {
        self.webhook.ordering == DeliveryOrder::Fifo
    }

    /// Attempts this actor may have in flight at once.
    fn max_in_flight(&self) -> usize {
        if self.is_fifo() {
            1
        } else {
            self.ctx.max_in_flight.get() as usize
        }
    }

    /// Claims this actor holds: a claim counts until its outcome is written, so a crash can
    /// resend at most that many deliveries of a webhook (an attempt answered but not yet
    /// recorded is sent again), and an engine whose records lag behind claims no further
    /// ahead.
    fn held(&self) -> usize {
        self.in_flight.0.len() + self.queued.len() + self.recording.len() + self.unrecorded.len()
    }

    /// Claims this actor may hold of its own: twice its in-flight limit (a prefetch), one
    /// for a FIFO webhook (which never claims ahead: the next head is known only after this
    /// one).
    fn own_window(&self) -> usize {
        if self.is_fifo() {
            1
        } else {
            own_window(self.max_in_flight())
        }
    }

    /// Claims this actor may still take: its window and its loan, less what it holds.
    fn room(&self) -> u32 {
        (self.own_window() + self.loan.slots()).saturating_sub(self.held()) as u32
    }

    /// Sizes the loan of spare slots to the backlog. Only a concurrent webhook borrows:
    /// a FIFO one sends one at a time anyway, and a message channel, paced, keeps the
    /// bound SPEC §10 gives its crash (what was in flight).
    fn fit_loan(&mut self) {
        let may_borrow = !self.is_fifo() && self.webhook.id.queue() == Queue::Webhook;
        let wanted = self.backlog && may_borrow && !self.stopping;
        let held = self.held();
        let busy = may_borrow && held > 0;
        self.loan
            .fit(busy, wanted, held.saturating_sub(self.own_window()));
    }

    fn reconfigure(&mut self, me: &ActorRef<WebhookMsg>, webhook: Webhook) {
        let reordered = webhook.ordering != self.webhook.ordering;
        self.webhook = webhook;
        if self.stopping {
            return; // its route stays withdrawn; the supervisor starts a new actor if needed
        }
        self.route
            .send_replace(Arc::new(self.ctx.route(&self.webhook)));
        if reordered {
            // The prefetch was claimed in the old order: hand it back and claim anew.
            let queued: Vec<ClaimedDelivery> = self.queued.drain(..).collect();
            self.release(me, queued.iter().map(ClaimedDelivery::claim).collect());
        }
        self.claim(me);
    }

    /// Claims as many due deliveries as there are free slots, unless a claim is under way.
    /// With outcomes waiting to be written, the claim rides in their job
    /// ([`Self::flush_records`]). A claim that cannot start now leaves `rewake` set.
    fn claim(&mut self, me: &ActorRef<WebhookMsg>) {
        if self.stopping {
            return;
        }
        self.rewake = true;
        self.flush_records(me);
        self.fit_loan();
        if !self.claiming && self.room() == 0 {
            // Asked to claim with a full window: what woke it found no room, a backlog
            // (no claim can find out while the window stays full).
            self.backlog = true;
            self.fit_loan();
        }
        let free = self.room();
        if self.claiming || free == 0 {
            return;
        }
        self.claiming = true;
        self.asked = free;
        self.rewake = false;
        let (store, webhook_id, ordering) = (
            self.ctx.store.clone(),
            self.webhook.id,
            self.webhook.ordering,
        );
        let (lease, me) = (self.ctx.lease_until(now_ms()), me.clone());
        tokio::spawn(async move {
            let result = store
                .write_relaxed(move |conn| {
                    claims::claim_due(conn, webhook_id, ordering, now_ms(), lease, free)
                })
                .await
                .map_err(|e| e.to_string());
            let _ = me.cast(WebhookMsg::Claimed(result));
        });
    }

    fn claimed(&mut self, me: &ActorRef<WebhookMsg>, result: Result<Claimed, String>) {
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
            self.release(me, claimed.iter().map(ClaimedDelivery::claim).collect());
            return;
        }
        self.backlog = !claimed.is_empty() && claimed.len() as u32 >= self.asked;
        if self.backlog {
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

    /// Fills the free in-flight slots from the queue.
    fn start_sends(&mut self, me: &ActorRef<WebhookMsg>) {
        while self.in_flight.0.len() < self.max_in_flight() {
            let Some(delivery) = self.queued.pop_front() else {
                break;
            };
            self.send(me, delivery);
        }
    }

    /// Stops claiming and sending: requests not yet sent are withdrawn, the queued (not yet
    /// sent) deliveries handed back.
    fn stop_claiming(&mut self, me: &ActorRef<WebhookMsg>) {
        self.stopping = true;
        self.route.send_replace(Arc::new(Route::Withdrawn));
        let queued: Vec<Claim> = self.queued.drain(..).map(|d| d.claim()).collect();
        self.release(me, queued);
    }

    /// Returns claims to `pending`, untouched.
    fn release(&mut self, me: &ActorRef<WebhookMsg>, claims: Vec<Claim>) {
        if claims.is_empty() {
            return;
        }
        self.releasing += 1;
        let (store, me) = (self.ctx.store.clone(), me.clone());
        tokio::spawn(async move {
            if let Err(error) = store
                .write(move |conn| claims::release(conn, &claims))
                .await
            {
                tracing::error!(%error, "could not release claims; they are released when their lease runs out");
            }
            let _ = me.cast(WebhookMsg::Released);
        });
    }

    fn send(&mut self, me: &ActorRef<WebhookMsg>, delivery: ClaimedDelivery) {
        let (ctx, route, me) = (self.ctx.clone(), self.route.subscribe(), me.clone());
        let by_mail = self.webhook.id.queue() == Queue::Email;
        let pace = self.pace.clone();
        let claim = delivery.claim();
        let task = tokio::spawn(async move {
            if let Some(pace) = &pace {
                pace.until_ready().await;
            }
            let report = match ctx.mailer.as_ref().filter(|_| by_mail) {
                // Boxed so that every webhook's task is not the size of an SMTP exchange.
                Some(mailer) => {
                    Box::pin(mailer.attempt(&route, delivery.id, &delivery.payload)).await
                }
                None => {
                    ctx.sender
                        .attempt(&route, delivery.id, &delivery.event_type, &delivery.payload)
                        .await
                }
            };
            let _ = me.cast(WebhookMsg::AttemptFinished(Box::new((delivery, report))));
        });
        self.in_flight
            .0
            .insert(claim.delivery_id, (claim, task.abort_handle()));
    }

    /// Makes sure the actor is woken no later than `at`.
    fn wake_at(&mut self, me: &ActorRef<WebhookMsg>, at: Millis) {
        if self.stopping || self.timer.covers(at) {
            return;
        }
        let delay = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        let timer = me.send_after(delay, move || WebhookMsg::TimerFired(at));
        self.timer.set(at, timer);
    }

    fn timer_fired(&mut self, at: Millis) {
        self.timer.fired(at);
    }
}

#[cfg(test)]
mod timer_tests {
    use super::{Timer, WakeTimer};

    /// A timer task that has sent its message but has not finished yet, as seen from the
    /// actor when it handles that message first.
    fn unfinished() -> Timer {
        tokio::spawn(std::future::pending())
    }

    #[tokio::test]
    async fn a_fired_timer_is_never_taken_for_pending_even_before_its_task_ends() {
        let mut timer = WakeTimer::default();
        assert!(!timer.covers(100), "no timer: a new one is needed");
        timer.set(100, unfinished());
        assert!(
            timer.covers(100) && timer.covers(500),
            "it wakes the actor by then"
        );
        timer.fired(100);
        assert!(
            !timer.covers(500),
            "it fired: the next wake-up needs a timer of its own"
        );
    }

    #[tokio::test]
    async fn an_earlier_wake_up_replaces_a_later_timer_and_the_old_message_is_ignored() {
        let mut timer = WakeTimer::default();
        timer.set(500, unfinished());
        assert!(!timer.covers(100), "a later timer does not wake it in time");
        timer.set(100, unfinished());
        timer.fired(500);
        assert!(
            timer.covers(100),
            "the replaced timer's message changes nothing"
        );
    }
}
