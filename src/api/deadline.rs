//! Time bounds on a request (SPEC §9): its body must arrive within
//! `HOOKD_REQUEST_READ_TIMEOUT_MS` (30 s) of its headers, or reading it fails and the
//! answer is 408 `request_timeout` on a closed connection; and a request never holds the
//! server longer than `HOOKD_HANDLER_TIMEOUT_MS` (60 s): then the handler is dropped and
//! the answer is 503 `timeout`. (The headers' own bound is the listener's.)
//!
//! Written as a tower service, like [`super::unread`], so that a request costs one timer
//! and no boxed future; a bodiless request gets no body timer at all.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::Response;
use axum::response::IntoResponse;
use futures_util::FutureExt;
use futures_util::future::Map;
use http_body::{Frame, SizeHint};
use tokio::time::{Sleep, Timeout, error::Elapsed};
use tower_layer::Layer;
use tower_service::Service;

use super::error::ApiError;

/// The layer, around every route.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From the headers to the body's end.
    pub body: Duration,
    /// From the headers to the answer.
    pub handler: Duration,
}

impl<S> Layer<S> for Deadlines {
    type Service = Bounded<S>;

    fn layer(&self, route: S) -> Bounded<S> {
        Bounded {
            route,
            limits: *self,
        }
    }
}

/// A route whose requests are bounded in time.
#[derive(Debug, Clone)]
pub struct Bounded<S> {
    route: S,
    limits: Deadlines,
}

type Answer = Result<Response<Body>, Infallible>;

impl<S> Service<Request> for Bounded<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Map<Timeout<S::Future>, fn(Result<Answer, Elapsed>) -> Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.route.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let request = if request.body().is_end_stream() {
            request
        } else {
            let by = self.limits.body;
            request.map(|body| {
                Body::new(DueBody {
                    body,
                    due: Box::pin(tokio::time::sleep(by)),
                })
            })
        };
        tokio::time::timeout(self.limits.handler, self.route.call(request))
            .map(answer_or_timeout as fn(Result<Answer, Elapsed>) -> Answer)
    }
}

fn answer_or_timeout(result: Result<Answer, Elapsed>) -> Answer {
    result.unwrap_or_else(|_| Ok(ApiError::TimedOut.into_response()))
}

/// A body that fails with [`BodyTooSlow`] once its time is up.
struct DueBody {
    body: Body,
    due: Pin<Box<Sleep>>,
}

/// The error a body gives when it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive in time")]
pub struct BodyTooSlow;

/// Whether reading a body failed because it did not arrive in time.
pub fn body_too_slow(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<BodyTooSlow>() {
            return true;
        }
        cause = error.source();
    }
    false
}

impl HttpBody for DueBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.due.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
