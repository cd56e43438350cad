//! `REQUEST_BODY_TIMEOUT`: a client that trickles its body (or stops sending it) is cut after
//! the deadline with 408, so a slow client cannot hold a handler, a connection of the pool or a
//! replace's permit for ever. The deadline runs from the request's headers to the body's end.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::sync::Middleware;
use crate::ApiError;
use crate::error::ErrorBody;

/// The default of `REQUEST_BODY_TIMEOUT`.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The 408's message.
pub const BODY_TIMEOUT_MESSAGE: &str = "request body not received in time";

#[derive(Debug, thiserror::Error)]
#[error("{BODY_TIMEOUT_MESSAGE}")]
struct BodyTimedOut;

/// Wraps a request's body in the deadline; answers 408 when the handler's read ran out of it.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

impl Middleware for BodyDeadline {
    /// Raised once the deadline passed; `None` for a request without a body.
    type Carry = Option<Arc<AtomicBool>>;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Self::Carry> {
        if request.body().is_end_stream() {
            return ControlFlow::Continue(None);
        }
        let timed_out = Arc::new(AtomicBool::new(false));
        let body = std::mem::take(request.body_mut());
        *request.body_mut() = with_deadline(body, self.0, timed_out.clone());
        ControlFlow::Continue(Some(timed_out))
    }

    fn after(&self, timed_out: Self::Carry, response: Response) -> Response {
        if timed_out.is_some_and(|timed_out| timed_out.load(Ordering::Acquire)) {
            let body = ErrorBody {
                code: None,
                error: BODY_TIMEOUT_MESSAGE.to_string(),
            };
            return ApiError::with_body(StatusCode::REQUEST_TIMEOUT, &body).into_response();
        }
        response
    }
}

/// `body`, failing with [`BodyTimedOut`] (and raising `timed_out`) once `timeout` has passed.
fn with_deadline(body: Body, timeout: Duration, timed_out: Arc<AtomicBool>) -> Body {
    let deadline = tokio::time::Instant::now() + timeout;
    let data = body.into_data_stream();
    let stream = futures_util::stream::unfold(Some(data), move |data| {
        let timed_out = timed_out.clone();
        async move {
            let mut data = data?;
            match tokio::time::timeout_at(deadline, data.next()).await {
                Ok(Some(chunk)) => Some((chunk.map_err(axum::BoxError::from), Some(data))),
                Ok(None) => None,
                Err(_) => {
                    timed_out.store(true, Ordering::Release);
                    Some((Err(axum::BoxError::from(BodyTimedOut)), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}
