//! FIFO: deliveries per second to one webhook with `"ordering": "fifo"`, to a receiver that
//! answers at once.
//!
//! Method: the throughput scenario's (a backlog loaded while the receiver is down, timed
//! from its return to the last arrival), with one FIFO webhook. Such a webhook has one
//! attempt out at a time, and its actor claims the next queue head in the same writer job
//! that records the previous outcome, so the figure is one round trip — POST, answer,
//! commit — per delivery. `out_of_order` counts arrivals whose event was stored before one
//! that arrived earlier (0 when the order held).

use super::throughput::{Backlog, deliver_backlog};
use crate::Options;
use crate::report::Report;
use crate::server::DeliveryOrder;

/// Default deliveries: about 15 s at the rate measured (3,000–3,500/s on the 2-core box).
pub const DEFAULT_SIZE: u64 = 50_000;

pub async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let backlog = Backlog {
        scenario: "fifo",
        webhooks: 1,
        order: DeliveryOrder::Fifo,
    };
    let size = options.size_or(DEFAULT_SIZE);
    Ok(vec![deliver_backlog(options, size, &backlog).await?])
}
