//! The supervisor: starts one delivery actor per active webhook, keeps the set in step with
//! the store as webhooks are created, changed, disabled and deleted, forwards wake-ups,
//! restarts an actor that fails, and sweeps claims past their lease.
//!
//! Every path ends in the state the store says, whatever the order of messages:
//! - an actor that stops for any reason (drained, disabled itself, failed) is followed by
//!   a fresh look at its webhook (`SupervisorState::sync`), which starts a new actor if
//!   the webhook is active by then;
//! - an actor told to drain is *retiring* until it stops; a webhook never has a new actor
//!   while its retiring one still has attempts out (the new one starts when the old one
//!   stops), so two actors never work one webhook;
//! - deleting a webhook stops its actor and its retiring one, aborting their attempts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::DeliveryContext;
use super::actor::{WebhookActor, WebhookMsg};
use crate::domain::WebhookId;
use crate::domain::time::now_ms;
use crate::store::claims::{self, ExpiredClaim};
use crate::store::webhooks;

/// How often claims past their lease are looked for.
pub const LEASE_SWEEP: Duration = Duration::from_secs(2);

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Bring this webhook's actor in line with the store: start it if the webhook is
    /// active, hand it new settings, or drain it if the webhook is inactive or gone. The
    /// reply (if any) comes once the actor uses the new settings.
    Sync(WebhookId, Option<RpcReplyPort<()>>),
    /// Deliveries were queued for these webhooks.
    Wake(Vec<WebhookId>),
    /// The webhook was deleted: stop its actors and their attempts, then reply.
    Remove(WebhookId, RpcReplyPort<()>),
    /// Look for claims past their lease and have them renewed or settled.
    SweepLeases,
    /// Shutdown: every actor stops claiming and finishes what it has in flight, then reply.
    Drain(RpcReplyPort<()>),
    /// How many actors run (metrics).
    CountActors(RpcReplyPort<usize>),
    /// Test hook: make this webhook's actor panic.
    #[cfg(test)]
    PanicActor(WebhookId),
}

pub struct Supervisor;

pub struct SupervisorState {
    /// Shared with every actor it starts: one copy, however many webhooks.
    ctx: Arc<DeliveryContext>,
    /// The actor of each active webhook.
    actors: HashMap<WebhookId, ActorRef<WebhookMsg>>,
    /// Actors told to drain, until they stop: their attempts in flight still finish.
    retiring: HashMap<WebhookId, ActorRef<WebhookMsg>>,
    /// Which webhook each actor (current or retiring) serves, to read supervision events.
    owners: HashMap<ActorId, WebhookId>,
    draining: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<DeliveryContext>;

    async fn pre_start(
        &self,
        _me: ActorRef<SupervisorMsg>,
        ctx: Arc<DeliveryContext>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            ctx,
            actors: HashMap::new(),
            retiring: HashMap::new(),
            owners: HashMap::new(),
            draining: false,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let active = state.ctx.store.read(webhooks::list_active).await?;
        tracing::info!(webhooks = active.len(), "starting delivery actors");
        for webhook in active {
            state.start(&me, webhook).await?;
        }
        me.send_interval(LEASE_SWEEP, || SupervisorMsg::SweepLeases);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Sync(id, reply) => state.sync_or_retry(&me, id, reply).await,
            SupervisorMsg::Wake(ids) => {
                for id in ids {
                    if let Some(actor) = state.actors.get(&id) {
                        let _ = actor.cast(WebhookMsg::Wake);
                    }
                }
            }
            SupervisorMsg::Remove(id, reply) => {
                let actors = [state.actors.remove(&id), state.retiring.remove(&id)];
                for actor in actors.into_iter().flatten() {
                    state.owners.remove(&actor.get_id());
                    let _ = actor
                        .stop_and_wait(Some("webhook deleted".into()), Some(Duration::from_secs(5)))
                        .await;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::SweepLeases => {
                if let Err(error) = state.sweep_leases().await {
                    tracing::warn!(%error, "could not look for claims past their lease; trying again");
                }
            }
            SupervisorMsg::Drain(reply) => {
                state.draining = true;
                let mut waits = tokio::task::JoinSet::new();
                let bound = state.ctx.delivery_timeout + Duration::from_secs(5);
                let actors = state.actors.drain().chain(state.retiring.drain());
                for (_, actor) in actors {
                    waits.spawn(async move {
                        let _ = actor
                            .call(|port| WebhookMsg::Drain(Some(port)), Some(bound))
                            .await;
                        let _ = actor
                            .stop_and_wait(None, Some(Duration::from_secs(5)))
                            .await;
                    });
                }
                state.owners.clear();
                waits.join_all().await;
                let _ = reply.send(());
            }
            SupervisorMsg::CountActors(reply) => {
                let _ = reply.send(state.actors.len());
            }
            #[cfg(test)]
            SupervisorMsg::PanicActor(id) => {
                if let Some(actor) = state.actors.get(&id) {
                    actor.cast(WebhookMsg::Panic)?;
                }
            }
        }
        Ok(())
    }

    // The default implementation would stop the supervisor on any child event.
    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, Some(error)),
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            _ => return Ok(()),
        };
        let Some(id) = state.owners.remove(&cell.get_id()) else {
            return Ok(());
        };
        for actors in [&mut state.actors, &mut state.retiring] {
            if actors.get(&id).is_some_and(|a| a.get_id() == cell.get_id()) {
                actors.remove(&id);
            }
        }
        if let Some(error) = failure {
            tracing::error!(webhook_id = %id, %error, "delivery actor failed; restarting it");
            // Its send tasks were aborted with it; hand its claims back, then start afresh.
            // A claim of its that this misses (one that commits later, or all of them if
            // the store cannot be written now) is released by the lease sweep.
            let released = state
                .ctx
                .store
                .write(move |conn| claims::release_webhook_claims(conn, id))
                .await;
            if let Err(error) = released {
                tracing::warn!(webhook_id = %id, %error, "could not release a failed actor's claims; their leases will");
            }
            state.ctx.telemetry.actor_restarted();
        }
        // Whatever stopped it, the webhook may be active by now (re-enabled while its
        // actor was stopping): look again.
        state.sync_or_retry(&me, id, None).await;
        Ok(())
    }
}

/// How long to wait before looking at a webhook again when the store could not be read.
const SYNC_RETRY: Duration = Duration::from_secs(1);

impl SupervisorState {
    /// [`Self::sync`], and if the store cannot tell now, again shortly: a storage fault
    /// must not leave an active webhook without its actor, nor stop the supervisor.
    async fn sync_or_retry(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        id: WebhookId,
        reply: Option<RpcReplyPort<()>>,
    ) {
        if let Err(error) = self.sync(me, id, reply).await {
            tracing::warn!(webhook_id = %id, %error, "could not bring a webhook's actor in line; trying again");
            me.send_after(SYNC_RETRY, move || SupervisorMsg::Sync(id, None));
        }
    }

    /// Brings one webhook's actor in line with the store: start it if the webhook is
    /// active, hand it new settings, or drain it if inactive or gone.
    async fn sync(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        id: WebhookId,
        reply: Option<RpcReplyPort<()>>,
    ) -> Result<(), ActorProcessingErr> {
        if self.draining {
            return Ok(());
        }
        let webhook = self
            .ctx
            .store
            .read(move |conn| webhooks::find(conn, id))
            .await?;
        match webhook {
            Some(webhook) if webhook.is_active => {
                if let Some(actor) = self.actors.get(&id) {
                    let message = WebhookMsg::Reconfigure(Box::new(webhook), reply);
                    if actor.cast(message).is_err() {
                        // It stopped already; its termination notice brings the next sync.
                        self.forget(id);
                    }
                } else if !self.retiring.contains_key(&id) {
                    self.start(me, webhook).await?;
                }
                // Else the retiring actor's stop brings another sync, which starts it.
            }
            _ => {
                if let Some(actor) = self.forget(id)
                    && actor.cast(WebhookMsg::Drain(None)).is_ok()
                {
                    self.owners.insert(actor.get_id(), id);
                    self.retiring.insert(id, actor);
                }
            }
        }
        Ok(())
    }

    async fn start(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        webhook: webhooks::Webhook,
    ) -> Result<(), ActorProcessingErr> {
        let id = webhook.id;
        let (actor, _) = Actor::spawn_linked(
            None,
            WebhookActor,
            (self.ctx.clone(), webhook, me.clone()),
            me.get_cell(),
        )
        .await?;
        self.owners.insert(actor.get_id(), id);
        self.actors.insert(id, actor);
        Ok(())
    }

    fn forget(&mut self, id: WebhookId) -> Option<ActorRef<WebhookMsg>> {
        let actor = self.actors.remove(&id)?;
        self.owners.remove(&actor.get_id());
        Some(actor)
    }

    /// Claims past their lease go to the actor that owns their webhook (which renews the
    /// ones it still works on and settles the rest); those of a webhook without an actor
    /// are settled here.
    async fn sweep_leases(&mut self) -> crate::store::Result<()> {
        let now = now_ms();
        let expired = self
            .ctx
            .store
            .read(move |conn| claims::expired_claims(conn, now))
            .await?;
        if expired.is_empty() {
            return Ok(());
        }
        let mut by_webhook: HashMap<WebhookId, Vec<ExpiredClaim>> = HashMap::new();
        for claim in expired {
            by_webhook.entry(claim.webhook_id).or_default().push(claim);
        }
        let mut orphaned = Vec::new();
        for (id, claims) in by_webhook {
            let owner = self.actors.get(&id).or_else(|| self.retiring.get(&id));
            match owner {
                Some(actor) => {
                    if let Err(ractor::MessagingErr::SendErr(WebhookMsg::Expired(claims))) =
                        actor.cast(WebhookMsg::Expired(claims))
                    {
                        orphaned.extend(claims);
                    }
                }
                None => orphaned.extend(claims),
            }
        }
        if !orphaned.is_empty() {
            tracing::warn!(
                claims = orphaned.len(),
                "releasing claims past their lease that no actor holds"
            );
            self.ctx
                .store
                .write(move |conn| claims::settle_lost_claims(conn, &orphaned, now_ms()))
                .await?;
        }
        Ok(())
    }
}

/// Releases every claim left by a previous process (start-up) or by this one (shutdown).
pub async fn release_all_claims(ctx: &DeliveryContext) -> crate::store::Result<usize> {
    ctx.store
        .write(|conn| claims::release_claims(conn, now_ms()))
        .await
}
