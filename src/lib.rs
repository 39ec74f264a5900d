//! # hookd
//!
//! A clinic's survey platform in one binary and one SQLite file: surveys, contacts,
//! invitations and responses, and signed webhooks that tell the hospital information
//! system (HIS) when a patient completes a survey — delivered at least once, through
//! crashes, restarts, receiver outages and bad input.
//!
//! ## The rooms
//!
//! - [`config`] — the typed configuration of `hookd serve`, from flags, `HOOKD_*` and TOML.
//! - [`domain`] — types that raw input becomes once: ids, webhook URL (with the SSRF rule),
//!   secret, headers, retry policy, survey questions and answer validation. No I/O.
//! - [`store`] — the only room that speaks SQL: a read pool and a group-commit writer over
//!   the schema in `schema.sql`.
//! - [`events`] — event bodies, serialised once.
//! - [`delivery`] — the engine: a ractor supervisor with one actor per active webhook (and
//!   per message channel), the SSRF-safe HTTP client with per-host rate limits, signing,
//!   the mail client and the retry policy.
//! - [`views`] — the JSON documents of what the store holds (webhooks, deliveries, the
//!   queue), shown alike by the API and by `hookd … --json`.
//! - [`api`] — the axum HTTP API; handlers parse input and call the store and the engine.
//! - [`client_tls`] — what hookd's own connections out trust (`HOOKD_CA_FILE`) and present
//!   (a client certificate), and TLS failures in words.
//! - [`listener`] — plain HTTP or HTTPS (rustls, reloaded on `SIGHUP`), with the
//!   connection-level read timeouts.
//! - [`telemetry`] — metrics and logs.
//! - [`cli`] — the `hookd` command line: parses arguments and dispatches.
//! - `startup` — a server's start-up chores (data-dir lock, first admin key, operations
//!   channel) and its loop that picks up changes made with `hookd` commands.
//! - [`ops`] — for operators: status, delivery repair and backup commands, and the
//!   retention job that forgets finished deliveries.
//!
//! ## The life of an event
//!
//! 1. A patient completes a survey: `POST /api/surveys/{id}/responses` (kiosk) or
//!    `POST /r/{token}`. The handler validates the answers against the survey.
//! 2. In one store transaction: the response row, the event with its body serialised once
//!    ([`events`]), and one `pending` delivery per active subscribed webhook
//!    ([`store::deliveries::enqueue_event`]). The writer commits it durably (fsync, shared
//!    with whatever else was waiting) before the API answers.
//! 3. The handler wakes those webhooks' actors ([`delivery::engine::Engine::wake`]).
//! 4. Each actor claims its due deliveries (`delivering`, under a lease and a claim token;
//!    [`store::claims`]), waits for the destination host's rate limit, signs the exact
//!    stored bytes with the secrets live at that moment and POSTs them
//!    ([`delivery::client::Sender::attempt`]).
//! 5. The outcome goes back to the store without blocking the actor: `succeeded`, `pending`
//!    again at the retry time ([`delivery::retry`]), or `failed` when the policy is
//!    exhausted (which may auto-disable the webhook and tell the operations channel). A crash
//!    before that record leaves the claim, which the next start releases, so the attempt is
//!    made again; a claim lost while the server runs is released when its lease runs out.
//!
//! ## Messages ride on the same queue
//!
//! An email or SMS (an invitation, a reminder, an admin's notice; SPEC §10) is a delivery
//! too, owed to a reserved queue row of its channel ([`domain::Queue`]): a distribution
//! writes the invitations, the filled-in messages as events and their jobs in one
//! transaction ([`store::messages`]), and the channel's actor claims, sends
//! ([`delivery::mail::Mailer`] for SMTP, the same HTTP client for the SMS gateway),
//! records and retries them like any delivery, paced by `HOOKD_MESSAGE_RATE_LIMIT`.

pub mod api;
pub mod cli;
pub mod client_tls;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod events;
pub mod listener;
pub mod ops;
mod pem_files;
mod startup;
pub mod store;
pub mod telemetry;
pub mod views;

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::delivery::DeliveryContext;
use crate::delivery::client::Sender;
use crate::delivery::engine::Engine;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Runs the server on `listener` until `shutdown` resolves, then shuts down in order:
/// stop accepting requests, stop claiming, let attempts in flight finish and record them,
/// stop the actors, release claims, close the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = listener::Listener::new(listener, &config)?;
    let client_tls = client_tls::ClientTls::load(&config)?;
    let _lock = startup::lock_data_dir(&config)?;
    let telemetry = Telemetry::new();
    let store = Store::open(&config.data_dir, &telemetry).context("opening the database")?;
    startup::ensure_admin_key(&store, &config).await?;
    startup::configure_operations_channel(&store, &config).await?;
    startup::configure_message_channels(&store, &config).await?;
    let mailer = match &config.messaging.mail {
        Some(mail) => Some(delivery::mail::Mailer::new(
            mail,
            client_tls.root_certificates(),
            config.delivery_timeout,
            config.max_in_flight.get(),
        )?),
        None => None,
    };
    let sender = Sender::new(
        config.network.clone(),
        config.delivery_timeout,
        config.host_rate_limit,
        &client_tls,
    )?;
    let ctx = DeliveryContext {
        store: store.clone(),
        sender: sender.clone(),
        telemetry: telemetry.clone(),
        auto_disable_after: config.auto_disable_after,
        max_in_flight: config.max_in_flight,
        spare_slots: delivery::window::SpareSlots::new(config.max_in_flight.get() as usize),
        delivery_timeout: config.delivery_timeout,
        network: config.network.clone(),
        mailer,
        sms: config.messaging.sms.clone(),
        message_rate_limit: config.messaging.rate_limit,
    };
    let (engine, engine_task) = Engine::start(ctx).await?;
    let public_url = config.public_base(listener.local_addr()?);
    let keys = api::KeyRing::load(&store)
        .await
        .context("loading the API keys")?;
    let public_limit = api::PublicLimit::new(config.public_rate_limit);
    let state = api::AppState::new(api::App {
        store: store.clone(),
        engine: engine.clone(),
        config: config.clone().into(),
        telemetry,
        public_url: public_url.into(),
        idempotency: api::InFlight::default(),
        keys: keys.clone(),
        public_limit: public_limit.clone(),
    });
    let background = tokio::spawn(startup::background(startup::Housekeeping {
        store: store.clone(),
        engine: engine.clone(),
        sender,
        keys,
        public_limit,
    }));
    let retention = tokio::spawn(ops::retention::run(store.clone(), config.retention));

    tracing::info!(
        listen = %listener.local_addr()?,
        https = listener.is_tls(),
        data_dir = %config.data_dir.display(),
        "hookd is serving"
    );
    listener.serve(api::router(state), shutdown).await?;

    tracing::info!("shutting down: draining attempts in flight");
    background.abort();
    retention.abort();
    engine.shutdown(engine_task).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
