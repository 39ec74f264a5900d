//! The limit on requests that carry no valid key (SPEC §9): patient links (`/r/*`), the
//! public routes, and `/api/*` with a missing or wrong key, per client address.
//!
//! A key holder is trusted (and has its own rules); anybody else on the internet gets
//! `HOOKD_PUBLIC_RATE_LIMIT` requests a second from one address, in bursts of twice that,
//! then 429 `rate_limited` with `Retry-After`. The address is the TCP peer's: behind a
//! reverse proxy every client shares the proxy's address, so the limit is then the
//! proxy's to enforce (see the README).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::error::ApiError;

/// The per-address limiter; `None` when `HOOKD_PUBLIC_RATE_LIMIT` is 0. Cheap to clone.
#[derive(Clone)]
pub struct PublicLimit(Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>);

impl PublicLimit {
    pub fn new(per_second: Option<NonZeroU32>) -> Self {
        Self(per_second.map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not zero"));
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        }))
    }

    /// Counts one request from the sender of `req`; refuses it when that address is over
    /// its limit. A request whose address is unknown (not from a socket) passes.
    pub fn check(&self, req: &Request) -> Result<(), ApiError> {
        let (Some(limiter), Some(ConnectInfo(peer))) =
            (&self.0, req.extensions().get::<ConnectInfo<SocketAddr>>())
        else {
            return Ok(());
        };
        limiter.check_key(&peer.ip()).map_err(|not_until| {
            // The limiter's own clock: its instants mean nothing to another clock's.
            let wait = not_until.wait_time_from(limiter.clock().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// Forgets addresses that have been quiet long enough to be back at a full burst.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
        }
    }
}

/// Middleware for the routes that need no key.
pub async fn limit_public(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    app.public_limit.check(&req)?;
    Ok(next.run(req).await)
}
