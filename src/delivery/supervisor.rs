//! The supervisor: starts one delivery actor per active webhook, keeps the set in step with
//! the store as webhooks are created, changed, disabled and deleted, forwards wake-ups, and
//! restarts an actor that fails.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::DeliveryContext;
use super::actor::{WebhookActor, WebhookMsg};
use crate::domain::WebhookId;
use crate::domain::time::now_ms;
use crate::store::{deliveries, webhooks};

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Bring this webhook's actor in line with the store: start it if the webhook is
    /// active, hand it new settings, or pause it if the webhook is inactive or gone.
    Sync(WebhookId),
    /// Deliveries were queued for these webhooks.
    Wake(Vec<WebhookId>),
    /// The webhook was deleted: stop its actor and its attempts, then reply.
    Remove(WebhookId, RpcReplyPort<()>),
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
    ctx: DeliveryContext,
    actors: HashMap<WebhookId, ActorRef<WebhookMsg>>,
    /// Which webhook each running actor serves, to read supervision events.
    owners: HashMap<ActorId, WebhookId>,
    draining: bool,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = DeliveryContext;

    async fn pre_start(
        &self,
        _me: ActorRef<SupervisorMsg>,
        ctx: DeliveryContext,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            ctx,
            actors: HashMap::new(),
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
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Sync(id) => state.sync(&me, id).await?,
            SupervisorMsg::Wake(ids) => {
                for id in ids {
                    if let Some(actor) = state.actors.get(&id) {
                        let _ = actor.cast(WebhookMsg::Wake);
                    }
                }
            }
            SupervisorMsg::Remove(id, reply) => {
                if let Some(actor) = state.forget(id) {
                    let _ = actor
                        .stop_and_wait(Some("webhook deleted".into()), Some(Duration::from_secs(5)))
                        .await;
                }
                let _ = reply.send(());
            }
            SupervisorMsg::Drain(reply) => {
                state.draining = true;
                let mut waits = tokio::task::JoinSet::new();
                let bound = state.ctx.delivery_timeout + Duration::from_secs(5);
                for (_, actor) in state.actors.drain() {
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
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(id) = state.owners.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state.actors.remove(&id);
                tracing::error!(webhook_id = %id, %error, "delivery actor failed; restarting it");
                // Its send tasks were aborted with it; hand its claims back, then start afresh.
                state
                    .ctx
                    .store
                    .write(move |conn| deliveries::release_webhook_claims(conn, id))
                    .await?;
                state.sync(&me, id).await?;
                state.ctx.telemetry.actor_restarted();
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = state.owners.remove(&cell.get_id()) {
                    state.actors.remove(&id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    /// Brings one webhook's actor in line with the store: start it if the webhook is
    /// active, hand it new settings, or pause it (drain, then stop) if inactive or gone.
    async fn sync(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        id: WebhookId,
    ) -> Result<(), ActorProcessingErr> {
        if self.draining {
            return Ok(());
        }
        match self
            .ctx
            .store
            .read(move |conn| webhooks::find(conn, id))
            .await?
        {
            Some(webhook) if webhook.is_active => match self.actors.get(&id) {
                Some(actor) => actor.cast(WebhookMsg::Reconfigure(Box::new(webhook)))?,
                None => self.start(me, webhook).await?,
            },
            _ => {
                if let Some(actor) = self.forget(id) {
                    actor.cast(WebhookMsg::Drain(None))?;
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
            (self.ctx.clone(), webhook),
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
}

/// Releases every claim left by a previous process (start-up) or by this one (shutdown).
pub async fn release_all_claims(ctx: &DeliveryContext) -> crate::store::Result<usize> {
    ctx.store
        .write(|conn| deliveries::release_claims(conn, now_ms()))
        .await
}
