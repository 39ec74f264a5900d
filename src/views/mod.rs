//! What the store holds, as JSON documents for people and programs: the HTTP API answers
//! with them and `hookd … --json` prints the same ones, so a script can move between the
//! two. Each view is built from the store's types and knows nothing of HTTP or the command
//! line; the OpenAPI document describes them (`ToSchema`).

mod deliveries;
mod queue;
mod webhooks;

pub use deliveries::{AttemptView, DeliveryDetail, DeliveryView};
pub use queue::{CountsView, QueueView, WebhookQueueView};
pub use webhooks::WebhookView;
