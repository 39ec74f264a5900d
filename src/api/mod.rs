//! The HTTP API (axum). Each resource module exports its own `router()`; this module
//! assembles them, puts `/api/*` behind the key check, renders every error in the
//! contract's shape, and makes sure every answer reaches its client (`unread`).
//! Handlers parse input into domain types and call the store and the engine; they never
//! speak SQL. Every `POST` with an `Idempotency-Key` passes through `idempotency`, and
//! handlers that change something write through its helper.

mod admin;
mod auth;
mod body;
mod contacts;
mod deadline;
mod deliveries;
mod distributions;
mod error;
mod extract;
mod idempotency;
mod keyring;
mod meta;
mod only_when;
mod operator;
mod permissions;
mod public_limit;
mod respondent;
mod surveys;
mod unread;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::delivery::engine::Engine;
use crate::store::Store;
use crate::telemetry::Telemetry;
pub use error::{ApiError, FieldError};
pub use idempotency::InFlight;
pub use keyring::KeyRing;
use only_when::OnlyWhen;
pub use public_limit::PublicLimit;

/// What every handler can reach, behind one `Arc`: axum clones the state for every
/// extractor and every middleware of every request, and cloning the handles inside (each an
/// `Arc` or several) one by one was a measurable share of a kiosk request's CPU.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The handles and settings of [`AppState`].
pub struct App {
    pub store: Store,
    pub engine: Engine,
    pub config: Arc<Config>,
    pub telemetry: Telemetry,
    /// Base of invitation links: `HOOKD_PUBLIC_URL`, else the address actually bound.
    pub public_url: Arc<str>,
    /// Idempotency keys of requests being handled now (a repeat meanwhile is a 409).
    pub idempotency: InFlight,
    /// The stored API keys, checked without a query.
    pub keys: KeyRing,
    /// The per-address limit on requests without a valid key.
    pub public_limit: PublicLimit,
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOf<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "hookd", description = "Surveys, contacts and responses, with durable signed webhooks."),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (protected, protected_doc) =
        OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
            .merge(webhooks::router())
            .merge(deliveries::router())
            .merge(surveys::router())
            .merge(contacts::router())
            .merge(distributions::router())
            .merge(meta::protected_router())
            .merge(admin::router())
            .split_for_parts();
    // Only a POST with an Idempotency-Key goes through the idempotency middleware.
    let remember = OnlyWhen::new(
        idempotency::applies,
        middleware::from_fn_with_state(state.clone(), idempotency::remember),
    );
    // Layers run outside in: the key check first, so that keys are kept per API key.
    // Each `layer` call boxes every route once more, and a request clones each box on its
    // way in: the layers of one place go in together, as a tuple (outermost first).
    let protected = protected.layer((
        middleware::from_fn_with_state(state.clone(), auth::require_key),
        remember.clone(),
    ));
    let respondent = respondent::router().layer(remember);
    let (public, public_doc) = meta::public_router()
        .merge(respondent)
        .merge(operator::router())
        .split_for_parts();
    // No key there: limited per client address.
    let public = public.layer(middleware::from_fn_with_state(
        state.clone(),
        public_limit::limit_public,
    ));
    let mut doc = protected_doc;
    doc.merge(public_doc);
    idempotency::document(&mut doc);
    let doc = Arc::new(doc);
    let deadlines = deadline::Deadlines {
        body: state.config.request_read_timeout,
        handler: state.config.handler_timeout,
    };
    let https = state.config.tls.is_some();
    let router = Router::new()
        .merge(protected)
        .merge(public)
        .route(
            "/api/openapi.json",
            axum::routing::get(move || meta::openapi(doc.clone())),
        )
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        // Two groups, as above: the trace's answers are of its own body type, which only a
        // route (of axum's body) turns back into the one the outer two take.
        .layer((
            TraceLayer::new_for_http().make_span_with(respondent::request_span),
            DefaultBodyLimit::max(extract::MAX_BODY_BYTES),
        ))
        .layer((
            // Outermost, so that reading what a handler left of a body keeps its deadline.
            deadlines,
            // Sees refusals made by the layers inside it.
            unread::ReadRestOfBody,
        ))
        .with_state(state);
    if https {
        // Browsers that reached hookd over HTTPS once keep to it for a year.
        router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        router
    }
}
