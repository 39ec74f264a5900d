//! Service routes: health, readiness, the event catalog, the OpenAPI document, and the
//! contract-shaped answers for unknown routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::domain::EventType;

pub fn protected_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(event_types))
        .routes(routes!(me))
}

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    name: &'static str,
    description: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    items: Vec<EventTypeView>,
}

/// The event catalog: the event types a webhook may subscribe to.
#[utoipa::path(get, path = "/api/event-types", tag = "meta", responses((status = 200, body = EventTypeList)))]
async fn event_types() -> Json<EventTypeList> {
    let items = EventType::SUBSCRIBABLE
        .iter()
        .map(|(kind, description)| EventTypeView {
            name: kind.as_str(),
            description,
        })
        .collect();
    Json(EventTypeList { items })
}

/// The key a request was made with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    /// The key's id (`env` for `HOOKD_API_KEY`), as the audit log names it.
    key_id: String,
    /// admin, integration, kiosk or viewer.
    role: &'static str,
}

/// The calling key and its role: what the operator page asks first, to offer only what
/// the key may do.
#[utoipa::path(get, path = "/api/me", tag = "meta",
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn me(caller: Caller) -> Json<KeyView> {
    Json(KeyView {
        key_id: caller.actor.0,
        role: caller.role.as_str(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers reads and can be written. (A server shutting down has
/// stopped answering: the listener closes before the engine drains.) While the store has seen a write fail for want of disk, each call tries a small
/// write itself, so readiness comes back when the disk does, also with no client writing.
#[utoipa::path(get, path = "/readyz", tag = "meta", security(()), responses((status = 200, body = Health), (status = 503)))]
async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Health>> {
    app.store
        .check_readable()
        .await
        .map_err(|_| ApiError::Unavailable("the database cannot be read".into()))?;
    if !app.store.writable() {
        // Its outcome is noted by the store; the flag below says what came of it.
        let _ = app.store.probe_write().await;
    }
    if !app.store.writable() {
        return Err(ApiError::Unavailable(
            "the database cannot be written".into(),
        ));
    }
    Ok(Json(Health { status: "ready" }))
}

pub async fn openapi(doc: Arc<utoipa::openapi::OpenApi>) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
