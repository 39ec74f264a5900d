//! Bearer-key authentication for `/api/*`. Stored keys are looked up by hash in memory
//! ([`super::KeyRing`]); the configured `HOOKD_API_KEY` is compared in constant time. The caller's key id is kept for the audit log.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::store::audit::Actor;

/// Who is calling: the audit identity of the key that authenticated the request.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// Middleware: 401 unless `Authorization: Bearer <key>` names a live key (429 instead
/// when the sender's address has had too many refusals).
pub async fn require_key(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(actor) = caller_of(&app, &req) else {
        app.public_limit.check(&req)?;
        return Err(ApiError::Unauthorized);
    };
    req.extensions_mut().insert(Caller(actor));
    Ok(next.run(req).await)
}

/// The audit identity of the request's key, if it presents a live one.
fn caller_of(app: &AppState, req: &Request) -> Option<Actor> {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())?;
    match &app.config.api_key {
        Some(configured) if same_secret(configured, presented) => Some(Actor("env".into())),
        _ => app.keys.find(presented).map(|id| Actor(id.to_string())),
    }
}

/// Compares two secrets without leaking where they differ (hashing first equalises lengths).
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
