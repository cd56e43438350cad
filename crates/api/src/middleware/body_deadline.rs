//! `REQUEST_BODY_TIMEOUT`: a client that trickles its body (or stops sending it) is cut after
//! the deadline with 408, so a slow client cannot hold a handler, a connection of the pool or a
//! replace's permit for ever. The deadline runs from the request's headers to the body's end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

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
pub async fn body_deadline(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = with_deadline(body, timeout, timed_out.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    if timed_out.load(Ordering::Acquire) {
        let body = ErrorBody {
            code: None,
            error: BODY_TIMEOUT_MESSAGE.to_string(),
        };
        return ApiError::with_body(StatusCode::REQUEST_TIMEOUT, &body).into_response();
    }
    response
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
