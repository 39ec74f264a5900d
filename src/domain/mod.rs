//! Domain types: raw input becomes these once, at the boundary ("parse, don't validate").
//!
//! Handlers, actors and the store only see these types. Nothing here does I/O.

pub mod email;
pub mod ids;
pub mod message;
pub mod role;
pub mod ssrf;
pub mod survey;
pub mod time;
pub mod webhook;

pub use ids::*;
pub use role::Role;
pub use webhook::{
    CustomHeaders, DeliveryOrder, EventType, RetryPolicy, Secret, SigningSecrets, WebhookUrl,
};
