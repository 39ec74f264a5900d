//! The request's side of idempotent requests: the middleware that answers a repeat from
//! the store, refuses a reused or busy key, and keeps what the handler did not.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::answer::{Keeper, Unchanged};
use super::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, MAX_KEY_LEN};
use crate::api::AppState;
use crate::api::auth::Caller;
use crate::api::deadline;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::MAX_BODY_BYTES;
use crate::domain::time::now_ms;
use crate::store::Store;
use crate::store::idempotency::{self, KEEP_MS, Kept};

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
    if let Some(Caller { actor, .. }) = req.extensions().get::<Caller>() {
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
            } else if deadline::body_too_slow(&error) {
                ApiError::RequestTimeout
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
