//! The engine's handle for the rest of the server: start it, tell it about changes, send a
//! test, drain it at shutdown.

use std::sync::Arc;

use ractor::{Actor, ActorRef};
use rusqlite::Connection;
use tokio::task::JoinHandle;

use super::client::{Route, fixed_route};
use super::supervisor::{Supervisor, SupervisorMsg, release_all_claims};
use super::{DeliveryContext, attempt_record, next_step};
use crate::domain::time::now_ms;
use crate::domain::{DeliveryId, WebhookId};
use crate::store::StoreError;
use crate::store::deliveries;
use crate::store::webhooks::Webhook;
use crate::telemetry::AttemptOutcome;

/// How long a webhook change waits for its actor to confirm it.
const SYNC_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Handle to the running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    supervisor: ActorRef<SupervisorMsg>,
    ctx: Arc<DeliveryContext>,
}

impl Engine {
    /// Releases claims left by a previous process, then starts the supervisor, which
    /// starts one actor per active webhook.
    pub async fn start(ctx: DeliveryContext) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let released = release_all_claims(&ctx).await?;
        if released > 0 {
            tracing::info!(
                released,
                "released deliveries that were in flight when the last process stopped"
            );
        }
        let ctx = Arc::new(ctx);
        let (supervisor, handle) = Actor::spawn(None, Supervisor, ctx.clone()).await?;
        Ok((Self { supervisor, ctx }, handle))
    }

    /// New deliveries were queued for these webhooks.
    pub fn wake(&self, webhooks: Vec<WebhookId>) {
        if !webhooks.is_empty() {
            let _ = self.supervisor.cast(SupervisorMsg::Wake(webhooks));
        }
    }

    /// The webhook changed in the store (created, updated, enabled, disabled): returns once
    /// its actor sends every request not yet sent with the new settings (a removed secret
    /// signs nothing from then on), or has been told to stop.
    pub async fn sync(&self, webhook: WebhookId) {
        let synced = self
            .supervisor
            .call(
                |port| SupervisorMsg::Sync(webhook, Some(port)),
                Some(SYNC_BOUND),
            )
            .await;
        if let Err(error) = synced {
            tracing::warn!(webhook_id = %webhook, %error, "the delivery engine did not confirm a webhook change");
        }
    }

    /// The webhook was deleted: returns once nothing of it is in flight.
    pub async fn remove(&self, webhook: WebhookId) {
        let _ = self
            .supervisor
            .call(|port| SupervisorMsg::Remove(webhook, port), None)
            .await;
    }

    /// Number of delivery actors running.
    pub async fn actor_count(&self) -> usize {
        self.supervisor
            .call(SupervisorMsg::CountActors, None)
            .await
            .ok()
            .and_then(|r| r.success_or(()).ok())
            .unwrap_or(0)
    }

    /// Sends a `webhook.test` event to the webhook now (active or not) through the same
    /// path as every delivery, records the one attempt, never retries it. `then` runs in
    /// the transaction that records the attempt (the API keeps its answer there). The
    /// attempt runs on its own task: a caller that goes away does not leave the delivery
    /// claimed.
    pub async fn send_test<T, F>(&self, webhook: &Webhook, then: F) -> crate::store::Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection, DeliveryId) -> crate::store::Result<T> + Send + 'static,
    {
        let now = now_ms();
        let event = crate::events::webhook_test(webhook.id, webhook.survey_id, now);
        let lease_until = self.ctx.lease_until(now);
        let hook = webhook.clone();
        let delivery = self
            .ctx
            .store
            .write(move |c| deliveries::create_test_delivery(c, &hook, &event, lease_until))
            .await?;
        let (ctx, webhook) = (self.ctx.clone(), webhook.clone());
        let attempt = tokio::spawn(async move {
            let route = fixed_route(Route::from(ctx.target(&webhook)));
            let report = ctx
                .sender
                .attempt(&route, delivery.id, &delivery.event_type, &delivery.payload)
                .await
                .expect("a fixed route is never withdrawn");
            let next = next_step(&report, &delivery, &webhook);
            let record = attempt_record(&report, &delivery, &webhook, next);
            let outcome = if report.succeeded() {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed
            };
            ctx.telemetry.attempt_finished(outcome, report.duration);
            let limit = ctx.auto_disable_after;
            let id = delivery.id;
            ctx.store
                .write(move |c| {
                    deliveries::record_attempt(c, &record, limit, now_ms())?;
                    then(c, id)
                })
                .await
        });
        attempt.await.map_err(StoreError::from_join)?
    }

    /// Shutdown, in order: stop claiming, let attempts in flight finish (bounded by the
    /// timeout) and record them, stop the actors, release any claim left.
    pub async fn shutdown(&self, handle: JoinHandle<()>) {
        let _ = self.supervisor.call(SupervisorMsg::Drain, None).await;
        self.supervisor.stop(None);
        let _ = handle.await;
        if let Err(error) = release_all_claims(&self.ctx).await {
            tracing::error!(%error, "could not release claims at shutdown; they are released at the next start");
        }
    }

    #[cfg(test)]
    pub fn panic_actor(&self, webhook: WebhookId) {
        let _ = self.supervisor.cast(SupervisorMsg::PanicActor(webhook));
    }
}
