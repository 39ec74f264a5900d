//! Idempotent requests (SPEC §8): a `POST` with an `Idempotency-Key` is answered once; a
//! repeat with the same key, method, path and body gets the first answer again
//! (`Idempotent-Replayed: true`) and does nothing.
//!
//! The middleware [`remember`] runs only for such requests (one header lookup for the
//! others): it buffers the body, answers a repeat from the store, refuses a key reused for
//! another request (422) or still being handled (409, from [`InFlight`]), and otherwise
//! hands the handler a [`Keeper`]. A handler that changes something writes through
//! [`Idempotency::write`], which renders the answer inside the same writer job and keeps
//! it there: the change and its answer commit together, with no commit of their own. An
//! answer without an effect (a refusal, or a success marked [`unchanged`]) is kept by the
//! middleware afterwards; a 5xx is not kept, so the client may try again. A success that
//! is neither kept by its handler nor marked is not kept either (and logged): better a
//! repeat that runs again than an answer that could outlive a lost change, or the reverse.
//!
//! [`answer`] is the handlers' side ([`Answer`], [`Idempotency`], [`Keeper`]);
//! [`middleware`] is the request's ([`remember`], [`InFlight`]).

mod answer;
mod middleware;

use axum::http::header::HeaderName;

pub use answer::{Answer, Idempotency, unchanged};
pub use middleware::{InFlight, applies, remember};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// Adds the `Idempotency-Key` header to every `POST` of the OpenAPI document.
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    let parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1 to 255 visible ASCII characters. The first answer is kept for 24 hours, per \
             API key (per link for /r/{token}) and key: a repeat with the same method, path \
             and body gets it again with `Idempotent-Replayed: true` and does nothing; the \
             same key with another request is 422 `idempotency_key_reused`; a repeat while \
             the first is still handled is 409 `idempotency_in_progress`. 5xx answers are \
             not kept.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_LEN))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    for item in doc.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(parameter.clone().into());
        }
    }
}
