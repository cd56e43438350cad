//! The shape of every middleware in the chain: some work on the request, then some on the
//! response, neither awaiting anything of its own. As a hand-written tower layer it costs one
//! call and a small future per request; `axum::middleware::from_fn` also clones the inner
//! service into a boxed service and boxes a future, per layer and per request, which for the
//! chain of ten was a fifth of the A2A proxy's CPU time per call.

use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

/// A middleware of the chain (see the module docs).
pub trait Middleware: Clone + Send + Sync + 'static {
    /// What [`Middleware::after`] needs to know of the request.
    type Carry: Send + 'static;

    /// Before the inner service: passes the request on (possibly changed), with what `after`
    /// needs, or answers it here (`Break`).
    fn before(&self, request: &mut Request) -> ControlFlow<Response, Self::Carry>;

    /// On the inner service's response.
    fn after(&self, carry: Self::Carry, response: Response) -> Response;
}

/// Wraps a service in a [`Middleware`].
#[derive(Debug, Clone)]
pub struct SyncLayer<M>(pub M);

impl<M: Clone, S> Layer<S> for SyncLayer<M> {
    type Service = SyncService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        SyncService {
            middleware: self.0.clone(),
            inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncService<M, S> {
    middleware: M,
    inner: S,
}

impl<M, S> Service<Request> for SyncService<M, S>
where
    M: Middleware,
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = SyncFuture<M, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.middleware.before(&mut request) {
            ControlFlow::Continue(carry) => SyncFuture::Inner {
                future: self.inner.call(request),
                after: Some((self.middleware.clone(), carry)),
            },
            ControlFlow::Break(response) => SyncFuture::Answered {
                response: Some(response),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, then [`Middleware::after`]; or the answer `before` gave.
    #[project = SyncFutureProjection]
    pub enum SyncFuture<M: Middleware, F> {
        Inner { #[pin] future: F, after: Option<(M, M::Carry)> },
        Answered { response: Option<Response> },
    }
}

impl<M, F> Future for SyncFuture<M, F>
where
    M: Middleware,
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            SyncFutureProjection::Inner { future, after } => {
                let Ok(response) = ready!(future.poll(cx));
                let (middleware, carry) = after.take().expect("polled after completion");
                Poll::Ready(Ok(middleware.after(carry, response)))
            }
            SyncFutureProjection::Answered { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
