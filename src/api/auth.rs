//! Bearer-key authentication and authorisation for `/api/*`. Stored keys are looked up by
//! hash in memory ([`super::KeyRing`]); the configured `HOOKD_API_KEY` is compared in
//! constant time and acts as an admin. The key's role is checked against the matched
//! route ([`super::permissions`]) before any handler runs. The caller's key id is kept for
//! the audit log.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use super::permissions;
use crate::domain::Role;
use crate::domain::time::now_ms;
use crate::store::audit::Actor;

/// Who is calling: the audit identity and the role of the key that authenticated the
/// request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub role: Role,
}

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

/// Middleware: 401 unless `Authorization: Bearer <key>` names a live, unexpired key (429
/// instead when the sender's address has had too many refusals); 403 when the key's role
/// does not reach the route.
pub async fn require_key(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(caller) = caller_of(&app, &req) else {
        app.public_limit.check(&req)?;
        return Err(ApiError::Unauthorized);
    };
    // Every route behind this layer has a template; a request without one reaches
    // nothing, so it is refused rather than guessed at.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if !route.is_some_and(|route| permissions::allows(caller.role, req.method(), route)) {
        return Err(ApiError::Forbidden { role: caller.role });
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The key the request presents, if it is live.
fn caller_of(app: &AppState, req: &Request) -> Option<Caller> {
    let presented = presented_key(req.headers())?;
    match &app.config.api_key {
        Some(configured) if same_secret(configured, presented) => Some(Caller {
            actor: Actor("env".into()),
            role: Role::Admin,
        }),
        _ => app.keys.find(presented, now_ms()).map(|found| Caller {
            actor: Actor(found.id.to_string()),
            role: found.role,
        }),
    }
}

/// The key a request presents as `Authorization: Bearer <key>`.
pub(super) fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Compares two secrets without leaking where they differ (hashing first equalises lengths).
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
