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

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::MAX_BODY_BYTES;
use crate::domain::time::now_ms;
use crate::store::idempotency::{self, KEEP_MS, Kept};
use crate::store::{self, Store};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// An answer rendered once: what the client gets and, with a key, what is kept.
#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Bytes,
}

impl Answer {
    /// A JSON answer, serialised as axum's `Json` would.
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        Self {
            status,
            location: None,
            body: serde_json::to_vec(value)
                .expect("views always serialise")
                .into(),
        }
    }

    pub fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(LOCATION, location);
        }
        response
    }
}

/// Marks a success that changed nothing (a read sent as `POST`, such as bulk status), so
/// the middleware may keep it after the handler.
#[derive(Clone, Copy)]
struct Unchanged;

pub fn unchanged(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(Unchanged);
    response
}

/// The `(scope, key)` pairs being handled now. Only the live process needs this: after a
/// crash, a request whose change never committed left nothing, and one whose change
/// committed also left its answer.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<(String, String)>>>);

impl InFlight {
    /// Marks the pair as being handled until the claim is dropped; `None` if it already is.
    fn claim(&self, scope: &str, key: &str) -> Option<Claim> {
        let pair = (scope.to_owned(), key.to_owned());
        let mut set = self.0.lock().expect("the in-flight set is never poisoned");
        set.insert(pair.clone()).then(|| Claim {
            set: self.clone(),
            pair,
        })
    }
}

struct Claim {
    set: InFlight,
    pair: (String, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.0.lock() {
            set.remove(&self.pair);
        }
    }
}

/// What a handler needs to keep its answer in its own writer job.
#[derive(Clone)]
pub struct Keeper {
    scope: Arc<str>,
    key: Arc<str>,
    fingerprint: [u8; 32],
    /// Set once the answer is saved in a job, so the middleware does not save it again.
    kept: Arc<AtomicBool>,
}

impl Keeper {
    /// Saves `answer` in the transaction of `conn` (call it inside the job that makes the
    /// change, after the change).
    pub fn keep(&self, conn: &Connection, answer: &Answer) -> store::Result<()> {
        let kept = Kept {
            fingerprint: self.fingerprint.to_vec(),
            status: answer.status.as_u16(),
            content_type: Some("application/json".into()),
            location: answer.location.clone(),
            body: answer.body.to_vec(),
        };
        idempotency::save(conn, &self.scope, &self.key, &kept, now_ms())?;
        self.kept.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Extractor: the request's [`Keeper`], if it carried an `Idempotency-Key`.
pub struct Idempotency(Option<Keeper>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Keeper>().cloned()))
    }
}

impl Idempotency {
    pub fn keeper(&self) -> Option<Keeper> {
        self.0.clone()
    }

    /// Runs `work` as one durable write and renders its answer with `render`. With a key,
    /// the answer is rendered and kept inside the same job, so both commit together;
    /// without one, it is rendered after the commit (the writer thread does no more than
    /// before). `render` answers `Err` only for outcomes that wrote nothing.
    pub async fn write<T, F, R>(&self, store: &Store, work: F, render: R) -> ApiResult<(T, Answer)>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> store::Result<T> + Send + 'static,
        R: Fn(&T) -> ApiResult<Answer> + Send + 'static,
    {
        let Some(keeper) = self.keeper() else {
            let value = store.write(work).await?;
            let answer = render(&value)?;
            return Ok((value, answer));
        };
        let (value, answer) = store
            .write(move |c| {
                let value = work(c)?;
                let answer = render(&value);
                if let Ok(answer) = &answer {
                    keeper.keep(c, answer)?;
                }
                Ok((value, answer))
            })
            .await?;
        Ok((value, answer?))
    }
}

/// The requests [`remember`] acts on: a `POST` with an `Idempotency-Key`.
pub fn applies(req: &Request) -> bool {
    req.method() == Method::POST && req.headers().contains_key(IDEMPOTENCY_KEY)
}

/// Middleware for `/api/*` (after the key check) and `/r/{token}`, for the requests that
/// [`applies`] picks.
pub async fn remember(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !applies(&req) {
        return next.run(req).await;
    }
    // The request runs to its end even if the client goes away, and its key stays claimed
    // until then: otherwise a repeat could start while its first write is still queued.
    let handled = tokio::spawn(async move {
        match handle(app, req, next).await {
            Ok(response) | Err(response) => response,
        }
    });
    handled.await.unwrap_or_else(|_| {
        ApiError::Internal(anyhow::anyhow!("request task failed")).into_response()
    })
}

async fn handle(app: AppState, req: Request, next: Next) -> Result<Response, Response> {
    let refuse = |error: ApiError| error.into_response();
    let key = parse_key(req.headers()).map_err(refuse)?;
    let scope = scope_of(&req).ok_or_else(|| refuse(ApiError::Unauthorized))?;
    let (parts, body) = req.into_parts();
    let body = read_body(body).await.map_err(refuse)?;
    let fingerprint = fingerprint(&parts, &body);
    let _claim = app.idempotency.claim(&scope, &key).ok_or_else(|| {
        refuse(ApiError::Conflict {
            code: "idempotency_in_progress",
            message: "a request with this Idempotency-Key is still being handled".into(),
        })
    })?;
    let (s, k) = (scope.clone(), key.clone());
    let found = app
        .store
        .read(move |c| idempotency::find(c, &s, &k, now_ms() - KEEP_MS))
        .await
        .map_err(|e| refuse(e.into()))?;
    if let Some(kept) = found {
        if kept.fingerprint != fingerprint {
            return Err(refuse(ApiError::IdempotencyKeyReused));
        }
        return Ok(replay(kept));
    }
    let keeper = Keeper {
        scope: scope.into(),
        key: key.into(),
        fingerprint,
        kept: Arc::default(),
    };
    let mut req = Request::from_parts(parts, Body::from(body));
    req.extensions_mut().insert(keeper.clone());
    let response = next.run(req).await;
    let status = response.status();
    if keeper.kept.load(Ordering::Relaxed) || status.is_server_error() {
        return Ok(response);
    }
    if status.is_success() && response.extensions().get::<Unchanged>().is_none() {
        tracing::error!(%status, "a POST succeeded without keeping its idempotent answer");
        return Ok(response);
    }
    Ok(keep_after(&app.store, &keeper, response).await)
}

/// Keeps an answer the handler did not keep itself: one without an effect (a refusal, or a
/// read such as bulk status). Relaxed: if a power cut loses it, the repeat is handled
/// afresh, which changes nothing either.
async fn keep_after(store: &Store, keeper: &Keeper, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal(anyhow::anyhow!("the answer could not be read")).into_response();
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let kept = Kept {
        fingerprint: keeper.fingerprint.to_vec(),
        status: parts.status.as_u16(),
        content_type: header(CONTENT_TYPE),
        location: header(LOCATION),
        body: body.to_vec(),
    };
    let (scope, key) = (keeper.scope.clone(), keeper.key.clone());
    let saved = store
        .write_relaxed(move |c| idempotency::save(c, &scope, &key, &kept, now_ms()))
        .await;
    if let Err(error) = saved {
        tracing::warn!(%error, "could not keep the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(body))
}

/// A kept answer, again.
fn replay(kept: Kept) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let mut response = (status, kept.body).into_response();
    let headers = response.headers_mut();
    headers.remove(CONTENT_TYPE);
    let values = [
        (CONTENT_TYPE, kept.content_type),
        (LOCATION, kept.location),
        (IDEMPOTENT_REPLAYED, Some("true".into())),
        (CACHE_CONTROL, Some("no-store".into())),
    ];
    for (name, value) in values {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// The key: exactly one header of 1 to 255 visible ASCII characters.
fn parse_key(headers: &HeaderMap) -> ApiResult<String> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let key = match (values.next(), values.next()) {
        (Some(value), None) => value.as_bytes(),
        _ => &[][..],
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be one header of 1 to 255 visible ASCII characters",
        ));
    }
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// Whose key it is: the API key that authenticated the request, or the link's token (as
/// its hash: a token is a credential and is never stored).
fn scope_of(req: &Request) -> Option<String> {
    if let Some(Caller(actor)) = req.extensions().get::<Caller>() {
        return Some(format!("key:{}", actor.0));
    }
    let token = req.uri().path().strip_prefix("/r/")?;
    Some(format!("token:{}", hex::encode(Sha256::digest(token))))
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("the body could not be read".into())
            }
        })
}

/// SHA-256 of the method, path (with query) and body bytes.
fn fingerprint(parts: &Parts, body: &[u8]) -> [u8; 32] {
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update([0]);
    hash.update(target);
    hash.update([0]);
    hash.update(body);
    hash.finalize().into()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &[u8]) -> ApiResult<String> {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
        parse_key(&headers)
    }

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert_eq!(key(b"order-42:a/b").unwrap(), "order-42:a/b");
        assert!(key(&[b'k'; 255]).is_ok());
        assert!(key(&[b'k'; 256]).is_err());
        assert!(key(b"").is_err());
        assert!(key(b"two words").is_err());
        assert!(key("caf\u{e9}".as_bytes()).is_err());
        assert!(key(b"tab\there").is_err());
    }

    #[test]
    fn two_key_headers_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert!(parse_key(&headers).is_err());
    }

    #[test]
    fn a_claimed_key_is_claimed_until_its_claim_is_dropped() {
        let set = InFlight::default();
        let claim = set.claim("key:a", "k").unwrap();
        assert!(set.claim("key:a", "k").is_none());
        assert!(set.claim("key:b", "k").is_some());
        drop(claim);
        assert!(set.claim("key:a", "k").is_some());
    }
}
