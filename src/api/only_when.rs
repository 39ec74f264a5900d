//! A middleware applied only to the requests that need it.
//!
//! axum's `from_fn` middleware costs every request it sees a clone of the service inside it
//! and a boxed future, whether it does anything or not. The idempotency middleware acts only
//! on a `POST` that carries an `Idempotency-Key`; [`OnlyWhen`] hands it those and sends
//! every other request straight to the route, at no cost beyond the check.

use std::task::{Context, Poll};

use axum::extract::Request;
use futures_util::future::Either;
use tower_layer::Layer;
use tower_service::Service;

/// A layer that wraps a route in `layer` for the requests `pick` selects and leaves the
/// route bare for the others.
#[derive(Clone)]
pub struct OnlyWhen<L> {
    pick: fn(&Request) -> bool,
    layer: L,
}

impl<L> OnlyWhen<L> {
    pub fn new(pick: fn(&Request) -> bool, layer: L) -> Self {
        Self { pick, layer }
    }
}

impl<S: Clone, L: Layer<S>> Layer<S> for OnlyWhen<L> {
    type Service = Picked<S, L::Service>;

    fn layer(&self, route: S) -> Self::Service {
        Picked {
            pick: self.pick,
            wrapped: self.layer.layer(route.clone()),
            bare: route,
        }
    }
}

/// The route twice: bare, and wrapped in the middleware.
#[derive(Clone)]
pub struct Picked<S, W> {
    pick: fn(&Request) -> bool,
    bare: S,
    wrapped: W,
}

impl<S, W> Service<Request> for Picked<S, W>
where
    S: Service<Request>,
    W: Service<Request, Response = S::Response, Error = S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, W::Future>;

    /// Ready when both are: the request that comes next may take either path. (axum's
    /// routes and `from_fn` are always ready.)
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        match self.bare.poll_ready(cx)? {
            Poll::Ready(()) => self.wrapped.poll_ready(cx),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if (self.pick)(&request) {
            Either::Right(self.wrapped.call(request))
        } else {
            Either::Left(self.bare.call(request))
        }
    }
}
