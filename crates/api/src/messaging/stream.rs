//! `GET /workspaces/{id}/events/stream`: one workspace's live events as server-sent events (the
//! original's `handlers/sse.go:44-107` at 624ef4d0).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::events_hub::LiveEvent;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// One event on the stream (`data:` line).
#[derive(Debug, Serialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    /// Unix milliseconds.
    timestamp: i64,
    data: &'a serde_json::Value,
}

/// `GET /workspaces/{id}/events/stream`: every live event about the workspace from now on, one
/// `data:` line each, after a `: ping` comment.
#[utoipa::path(get, path = "/workspaces/{id}/events/stream", tag = "events",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "text/event-stream of {type, timestamp, data}", content_type = "text/event-stream", body = String),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Response> {
    super::proxy::cached_target(&state, workspace_id)
        .await
        .context("failed to verify workspace")?
        .ok_or_else(ApiError::workspace_not_found)?;
    let events = state.events.subscribe();
    let shutdown = state.events.shutdown().clone();
    let mut response = Response::new(sse_body(events, shutdown, workspace_id));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("connection", HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct Subscription {
    events: broadcast::Receiver<Arc<LiveEvent>>,
    shutdown: CancellationToken,
    workspace_id: Uuid,
    greeted: bool,
}

fn sse_body(
    events: broadcast::Receiver<Arc<LiveEvent>>,
    shutdown: CancellationToken,
    workspace_id: Uuid,
) -> Body {
    let subscription = Subscription {
        events,
        shutdown,
        workspace_id,
        greeted: false,
    };
    let lines = futures_util::stream::unfold(subscription, |mut s| async move {
        if !s.greeted {
            s.greeted = true;
            return Some((
                Ok::<_, std::io::Error>(Bytes::from_static(b": ping\n\n")),
                s,
            ));
        }
        let line = next_line(&mut s).await?;
        Some((Ok(line), s))
    });
    Body::from_stream(lines)
}

/// The next event about the workspace as a `data:` line; `None` at shutdown.
async fn next_line(s: &mut Subscription) -> Option<Bytes> {
    loop {
        let received = tokio::select! {
            () = s.shutdown.cancelled() => return None,
            received = s.events.recv() => received,
        };
        match received {
            Ok(event) if event.workspace() == Some(s.workspace_id) => {
                let line = StreamEvent {
                    event_type: &event.event,
                    timestamp: event.timestamp.timestamp_millis(),
                    data: &event.payload,
                };
                let json = serde_json::to_string(&line).ok()?;
                return Some(Bytes::from(format!("data: {json}\n\n")));
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return None,
        }
    }
}
