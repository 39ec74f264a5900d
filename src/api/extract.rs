//! Request parsing at the boundary: JSON bodies, ids in paths, list parameters. Every
//! failure becomes the contract's error shape (never axum's plain-text rejections).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::error::Category;

use super::deadline;
use super::error::{ApiError, FieldError};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON object body read into `T`, one of the body structs of [`super::body`].
/// Malformed JSON, a body that is not an object, a field sent twice or another content
/// type: 400 `invalid_json`; over 1 MiB: 413. Field values are not checked here: `T`'s
/// fields keep what is wrong with them, so that the handler can report every bad field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        serde_json::from_slice::<Object<T>>(&bytes)
            .map(|Object(body)| Self(body))
            .map_err(|e| match e.classify() {
                // Not `{e}`: it would quote the body back (a string body, say).
                Category::Data => ApiError::InvalidJson(format!(
                    "the body must be one JSON object, each field sent once (line {}, column {})",
                    e.line(),
                    e.column()
                )),
                _ => ApiError::InvalidJson(format!("the body is not valid JSON: {e}")),
            })
    }
}

/// The bytes of a body sent as JSON.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::InvalidJson(
            "send the body as Content-Type: application/json".into(),
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else if deadline::body_too_slow(&rejection) {
            ApiError::RequestTimeout
        } else {
            ApiError::InvalidJson(format!("the body could not be read: {rejection}"))
        }
    })
}

/// `T` read from a JSON object only: a struct would otherwise also accept an array, its
/// items taken as the fields in order.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Visit<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }

        deserializer.deserialize_map(Visit(PhantomData))
    }
}

/// Path parameters. A segment that cannot even be decoded (invalid UTF-8, say) names
/// nothing that exists, so it is a 404 in the contract's shape, not axum's plain text.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_| ApiError::NotFound)
    }
}

/// Parses a path id; an id that is not a UUID cannot exist, so it is a 404.
pub fn path_id<T: FromStr>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound)
}

/// The query string as a map (repeated keys: the last wins).
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

/// `?limit=` (default 50, max 200) and `?cursor=`.
pub struct Page<C> {
    pub limit: u32,
    pub cursor: Option<C>,
}

impl QueryMap {
    pub fn page<C: FromStr>(&self) -> Result<Page<C>, ApiError> {
        let mut errors = Vec::new();
        let limit = match self.0.get("limit") {
            None => 50,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=200).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new(
                        "limit",
                        "must be a whole number from 1 to 200",
                    ));
                    50
                }
            },
        };
        let cursor = match self.0.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(text) => match text.parse() {
                Ok(cursor) => Some(cursor),
                Err(_) => {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this list gave out",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Page { limit, cursor })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// Turns a page of `limit + 1` fetched rows into the items and the next cursor.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let next = rows.last().map(cursor_of);
        (rows, next)
    } else {
        (rows, None)
    }
}
