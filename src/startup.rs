//! Chores of a server's start and of its life beside the command line: one server per data
//! directory, the first admin key, the operations channel's configuration, and the
//! background loop that picks up changes made with `hookd` commands.

use std::time::Duration;

use anyhow::Context;

use crate::api::{KeyRing, PublicLimit};
use crate::config::Config;
use crate::delivery::client::Sender;
use crate::delivery::engine::Engine;
use crate::domain::Role;
use crate::domain::message::Channel;
use crate::domain::time::{Millis, format_ms, now_ms};
use crate::store::{self, Store, audit, control, keys, messages, notices};

/// The audit log's actor for what the server does by itself (the first admin key).
const SERVER_ACTOR: &str = "hookd";

/// How often the server looks for changes made by the command line.
const CONTROL_POLL: Duration = Duration::from_millis(250);

/// One server per data directory: a second one would claim the same deliveries.
pub(crate) fn lock_data_dir(config: &Config) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let path = config.data_dir.join("hookd.lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another hookd server is using {}",
            config.data_dir.display()
        )
    })?;
    Ok(file)
}

/// First start with no key at all: make an admin key, print it once, keep only its hash.
pub(crate) async fn ensure_admin_key(store: &Store, config: &Config) -> anyhow::Result<()> {
    if config.api_key.is_some() || store.read(keys::any_active).await? {
        return Ok(());
    }
    let (key, secret) = store
        .write(|c| {
            let now = now_ms();
            let new = keys::NewKey {
                name: "bootstrap admin",
                role: Role::Admin,
                expires_at: None,
            };
            let created = keys::create(c, &new, now)?;
            let entry = audit::Entry {
                actor: &audit::Actor(SERVER_ACTOR.into()),
                action: "key.created",
                target_type: "api_key",
                target_id: created.0.id.to_string(),
                detail: serde_json::json!({"reason": "first start without a key", "role": "admin"}),
            };
            audit::record(c, &entry, now)?;
            Ok(created)
        })
        .await?;
    println!(
        "hookd: created the first admin API key (id {}); it is shown only this once:\n\n    {secret}\n",
        key.id
    );
    Ok(())
}

/// What the housekeeping loop looks after.
pub(crate) struct Housekeeping {
    pub store: Store,
    pub engine: Engine,
    pub sender: Sender,
    pub keys: KeyRing,
    pub public_limit: PublicLimit,
}

/// Housekeeping while the server runs: pick up command-line changes (webhooks, keys),
/// forget idle hosts and quiet client addresses.
pub(crate) async fn background(house: Housekeeping) {
    let mut ticks = tokio::time::interval(CONTROL_POLL);
    let mut n: u64 = 0;
    loop {
        ticks.tick().await;
        n += 1;
        if let Err(error) = apply_control_signals(&house.store, &house.engine).await {
            tracing::warn!(%error, "could not read control signals");
        }
        if let Err(error) = house.keys.refresh(&house.store).await {
            tracing::warn!(%error, "could not reload the API keys");
        }
        if let Err(error) = write_back_key_uses(&house.store, &house.keys, now_ms()).await {
            tracing::warn!(%error, "could not note when API keys were used or expired");
        }
        if n.is_multiple_of(240) {
            house.sender.forget_idle_hosts();
            house.public_limit.forget_idle();
        }
    }
}

/// Writes the keys' last uses (each at most once a minute) and notes in the audit log the
/// keys that have expired, in one relaxed write when there is anything to write.
async fn write_back_key_uses(store: &Store, ring: &KeyRing, now: Millis) -> store::Result<()> {
    let uses = ring.take_uses();
    let expired = ring.newly_expired(now);
    if uses.is_empty() && expired.is_empty() {
        return Ok(());
    }
    let written = {
        let (uses, expired) = (uses.clone(), expired.clone());
        store
            .write_relaxed(move |c| {
                keys::record_use(c, &uses)?;
                for &(id, at) in &expired {
                    if keys::record_expiry(c, id, now)? {
                        let entry = audit::Entry {
                            actor: &audit::Actor(SERVER_ACTOR.into()),
                            action: "key.expired",
                            target_type: "api_key",
                            target_id: id.to_string(),
                            detail: serde_json::json!({"expiresAt": format_ms(at)}),
                        };
                        audit::record(c, &entry, now)?;
                    }
                }
                Ok(())
            })
            .await
    };
    match written {
        Ok(()) => {
            let ids: Vec<_> = expired.iter().map(|(id, _)| *id).collect();
            ring.expiry_recorded(&ids);
            Ok(())
        }
        Err(error) => {
            ring.give_back_uses(&uses);
            Err(error)
        }
    }
}

async fn apply_control_signals(store: &Store, engine: &Engine) -> store::Result<()> {
    if !store.read(control::any).await? {
        return Ok(());
    }
    for webhook in store.write(control::take).await? {
        engine.sync(webhook).await;
        engine.wake(vec![webhook]);
    }
    Ok(())
}

/// Registers the operations webhook (`HOOKD_OPS_WEBHOOK_URL`), or switches it off.
pub(crate) async fn configure_operations_channel(
    store: &Store,
    config: &Config,
) -> anyhow::Result<()> {
    let endpoint = config.ops_webhook.clone();
    store
        .write(move |c| {
            let endpoint = endpoint
                .as_ref()
                .map(|(url, secret)| (url, secret.as_ref()));
            notices::configure(c, endpoint, now_ms())
        })
        .await
        .context("configuring the operations webhook")
}

/// Registers the email and SMS queues as configured (SPEC §10), and the admins told of
/// disabled webhooks.
pub(crate) async fn configure_message_channels(
    store: &Store,
    config: &Config,
) -> anyhow::Result<()> {
    let email = config.messaging.mail.as_ref().map(|m| m.server.describe());
    let sms = config
        .messaging
        .sms
        .as_ref()
        .map(|s| s.url.as_str().to_owned());
    let admins = config
        .messaging
        .mail
        .as_ref()
        .map(|m| m.admins.clone())
        .unwrap_or_default();
    store
        .write(move |c| {
            let now = now_ms();
            messages::configure_channel(c, Channel::Email, email.as_deref(), now)?;
            messages::configure_channel(c, Channel::Sms, sms.as_deref(), now)?;
            messages::configure_admins(c, &admins)
        })
        .await
        .context("configuring the message channels")
}
