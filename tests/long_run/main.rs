//! The promises that must hold while a server runs for weeks (SPEC §8): secrets that stop
//! signing on time, claims that are leases, races between the API and the engine that end
//! in the state the store says, paused deliveries of disabled webhooks, FIFO webhooks.
//! Races are made deterministic by holding requests at the receiver ([`common::Gate`]).

#[path = "../common/mod.rs"]
mod common;

mod fifo;
mod leases;
mod notices;
mod paused;
mod races;
mod secrets;

use std::time::Duration;

/// How long any wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);
