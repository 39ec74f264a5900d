//! The handlers' side of idempotent requests: an answer rendered once, and the writer job
//! that keeps it with the change it reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rusqlite::Connection;
use serde::Serialize;

use crate::api::error::ApiResult;
use crate::domain::time::now_ms;
use crate::store::idempotency::{self, Kept};
use crate::store::{self, Store};

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
            body: store::to_json_with_room(value).into(),
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
pub(super) struct Unchanged;

pub fn unchanged(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(Unchanged);
    response
}

/// What a handler needs to keep its answer in its own writer job.
#[derive(Clone)]
pub struct Keeper {
    pub(super) scope: Arc<str>,
    pub(super) key: Arc<str>,
    pub(super) fingerprint: [u8; 32],
    /// Set once the answer is saved in a job, so the middleware does not save it again.
    pub(super) kept: Arc<AtomicBool>,
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
