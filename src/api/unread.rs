//! Every answer reaches its client, also when the request's body was never read.
//!
//! hyper keeps a connection open after an answer only if the request's body was read to
//! its end; otherwise it closes the connection once the answer is written. Closing a socket
//! while request bytes are still unread in it, or still on their way, makes the kernel
//! reset the connection, and a reset destroys whatever of the answer the client had not
//! read yet: a refusal (a wrong key, an unknown route, a body over the limit) sent before
//! its body arrived came back as "connection closed" instead of its 401, 404 or 413.
//!
//! So this layer, around every route, hands the handler a body that returns here whatever
//! the handler left of it, and reads and discards that rest before the answer goes out: the
//! connection then stays open and the answer arrives whole. Reading the rest is bounded
//! ([`REST_LIMIT_BYTES`], [`REST_TIME`]); a client that sends more, or too slowly, gets its
//! answer with `Connection: close` and is on its own. A client that asked
//! `Expect: 100-continue` and was refused before its body was asked for has sent none of
//! it, so that connection is closed (cleanly: nothing is unread) instead of inviting a body
//! that nobody wants.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::{CONNECTION, EXPECT};
use axum::http::{HeaderValue, Response};
use futures_util::future::{BoxFuture, Either};
use http_body::{Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

use super::extract::MAX_BODY_BYTES;

/// The most of an unread body read after the answer is ready: a refused upload a few times
/// the largest accepted one is still read out; a bigger one is cut off.
const REST_LIMIT_BYTES: usize = 4 * MAX_BODY_BYTES;
/// The longest that reading the rest may delay an answer.
const REST_TIME: Duration = Duration::from_secs(5);

/// The layer, around every route. Written as a service rather than with `from_fn`, which
/// would clone the route for every request; a request without a body (most `GET`s) goes
/// straight through.
#[derive(Debug, Clone, Copy)]
pub struct ReadRestOfBody;

impl<S> Layer<S> for ReadRestOfBody {
    type Service = ReadsRest<S>;

    fn layer(&self, route: S) -> ReadsRest<S> {
        ReadsRest { route }
    }
}

/// A route whose request bodies are read to their end before its answers go out.
#[derive(Debug, Clone)]
pub struct ReadsRest<S> {
    route: S,
}

type Answer = Result<Response<Body>, Infallible>;

impl<S> Service<Request> for ReadsRest<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Answer>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.route.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.body().is_end_stream() {
            return Either::Left(self.route.call(request));
        }
        let expects_continue = request
            .headers()
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let left = Arc::new(Mutex::new(None));
        let request = request.map(|body| {
            Body::new(Lent {
                body: Some(body),
                polled: false,
                left: left.clone(),
            })
        });
        let answering = self.route.call(request);
        Either::Right(Box::pin(async move {
            let Ok(mut response) = answering.await;
            let rest = left.lock().unwrap_or_else(|e| e.into_inner()).take();
            let closing = match rest {
                None => false,
                Some(Rest { polled: false, .. }) if expects_continue => true,
                Some(Rest { body, .. }) => !read_out(body).await,
            };
            if closing {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }))
    }
}

/// What a handler left of a body.
struct Rest {
    body: Body,
    /// Whether the handler asked for any of it (with `Expect: 100-continue`, the client
    /// sends the body only then).
    polled: bool,
}

/// Reads and discards `body` to its end; answers whether it got there within the bounds.
async fn read_out(mut body: Body) -> bool {
    let reading = async {
        let mut budget = REST_LIMIT_BYTES;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let Ok(frame) = frame else {
                return false;
            };
            let size = frame.data_ref().map_or(0, Bytes::len);
            match budget.checked_sub(size) {
                Some(left) => budget = left,
                None => return false,
            }
        }
        true
    };
    tokio::time::timeout(REST_TIME, reading)
        .await
        .unwrap_or(false)
}

/// The request body as the handler sees it: when dropped before its end, it gives the
/// rest back to [`ReadsRest`].
struct Lent {
    body: Option<Body>,
    polled: bool,
    left: Arc<Mutex<Option<Rest>>>,
}

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        this.polled = true;
        match this.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|b| !b.is_end_stream()) {
            let rest = Rest {
                body,
                polled: self.polled,
            };
            *self.left.lock().unwrap_or_else(|e| e.into_inner()) = Some(rest);
        }
    }
}
