//! `POST /workspaces/{id}/a2a`: the A2A JSON-RPC proxy between the canvas (or a peer) and the
//! target workspace's agent (the original's `ProxyA2A`, `handlers/a2a_proxy.go:237-533` at
//! 624ef4d0).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::address::AddressPolicy;
use super::agent::{self, Failure};
use super::call::{Answer, Call};
use super::payload::{self, HintBody};
use super::watch::IdleWatch;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// The largest request accepted.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// `X-Timeout: <seconds>` bounds the whole call when positive.
const TIMEOUT_HEADER: &str = "x-timeout";

/// 200 for a poll-mode target: the request waits in its inbox (the activity log).
#[derive(Debug, Serialize, ToSchema)]
pub struct PollQueued {
    pub delivery_mode: &'static str,
    pub method: String,
    pub status: &'static str,
}

/// 202: the agent was busy; the request waits in the queue and is sent on its next heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusyQueued {
    pub message: &'static str,
    pub queue_depth: i64,
    pub queue_id: Uuid,
    pub queued: bool,
}

/// 503 when the target has no URL to call.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoUrl {
    pub error: &'static str,
    pub status: String,
}

/// 503 when the agent is busy and its request could not be queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Busy {
    pub busy: bool,
    pub error: &'static str,
    pub retry_after: u64,
}

/// 502 when the agent's answer could not be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unread {
    pub delivery_confirmed: bool,
    pub error: &'static str,
}

/// `POST /workspaces/{id}/a2a`: forwards a JSON-RPC request (wrapped if the caller sent none) to
/// the workspace's agent and answers with the agent's answer; streams are relayed as they come.
#[utoipa::path(post, path = "/workspaces/{id}/a2a", tag = "a2a",
    params(("id" = Uuid, Path),
           ("X-Workspace-ID" = Option<String>, Header, description = "The calling workspace"),
           ("X-Timeout" = Option<u64>, Header, description = "Seconds the whole call may take")),
    request_body(content = Object, description = "A2A JSON-RPC request, or its method and params"),
    responses(
    (status = 200, description = "The agent's answer (JSON, or text/event-stream), or a poll-mode target's receipt", body = PollQueued),
    (status = 202, description = "The agent is busy; queued", body = BusyQueued),
    (status = 400, description = "Invalid JSON, message, or a refused agent address", body = HintBody),
    (status = 401, description = "The named caller's token is missing or wrong", body = ErrorBody),
    (status = 402, description = "Over budget", body = ErrorBody),
    (status = 403, description = "Reserved caller id, or not allowed by the hierarchy", body = ErrorBody),
    (status = 404, description = "Unknown or removed workspace", body = ErrorBody),
    (status = 413, description = "Request over 1 MiB", body = ErrorBody),
    (status = 502, description = "The agent could not be reached, or answered something unreadable", body = Unread),
    (status = 503, description = "No URL, or busy and not queued", body = NoUrl)))]
pub async fn proxy(
    State(state): State<AppState>,
    WorkspaceId(target_id): WorkspaceId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let started = Instant::now();
    let raw = read_request(body).await?;
    let caller = super::caller::identify(&state, &headers, target_id).await?;
    let target = cached_target(&state, target_id)
        .await
        .context("lookup failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    super::caller::check_hierarchy(&state, caller, target_id).await?;
    if target.over_budget() {
        let body = error_body("workspace budget limit exceeded");
        return Err(ApiError::with_body(StatusCode::PAYMENT_REQUIRED, &body));
    }
    let request = payload::normalise(&raw)?;
    let total = call_limit(&headers, &state.config);
    let call = Call::new(state, target_id, target, caller, request);
    deliver(call, total, started).await
}

/// An in-process call through the proxy, as the original's `ProxyA2ARequest` served its cron
/// scheduler (`handlers/a2a_proxy.go:157-166` at 624ef4d0): the same checks after the caller's
/// (unknown or removed target, budget, normalisation), the same delivery, activity rows and
/// events. `caller` `None` is the canvas class (no access check, `source_id` NULL).
pub async fn call_in_process(
    state: AppState,
    target_id: Uuid,
    caller: Option<Uuid>,
    body: &Value,
) -> ApiResult<Response> {
    let started = Instant::now();
    let target = cached_target(&state, target_id)
        .await
        .context("lookup failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    if target.over_budget() {
        let body = error_body("workspace budget limit exceeded");
        return Err(ApiError::with_body(StatusCode::PAYMENT_REQUIRED, &body));
    }
    let request = payload::normalise(body.to_string().as_bytes())?;
    let total = state.config.a2a_total_timeout();
    let call = Call::new(state, target_id, target, caller, request);
    deliver(call, total, started).await
}

/// The target of a call, from the workspace cache when it holds it (exact: see
/// [`crate::workspace_cache`]); `None` when it does not exist or is removed.
pub async fn cached_target(
    state: &AppState,
    target_id: Uuid,
) -> Result<Option<store::messaging::ProxyTarget>, store::StoreError> {
    let cache = state.events.workspace_cache();
    let ticket = match cache.lookup_target(target_id) {
        Ok(target) => return Ok(Some(target)),
        Err(ticket) => ticket,
    };
    let target = store::messaging::proxy_target(&state.db, target_id).await?;
    if let Some(target) = &target {
        cache.fill_target(ticket, target_id, target.clone());
    }
    Ok(target)
}

/// Delivers a checked call: into a poll-mode agent's inbox, or to the agent's URL.
pub(super) async fn deliver(call: Call, total: Duration, started: Instant) -> ApiResult<Response> {
    if call.target.polls() {
        call.queue_for_poll().await?;
        let receipt = PollQueued {
            delivery_mode: "poll",
            method: call.request.method.clone(),
            status: "queued",
        };
        return Ok(axum::Json(receipt).into_response());
    }
    let url = resolve_url(&call).await?;
    forward(call, &url, total, started).await
}

async fn read_request(body: Body) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(
            ApiError::PayloadTooLarge("request body too large".to_string()),
        ),
        Err(_) => Err(ApiError::BadRequest("failed to read request body".into())),
    }
}

/// The agent's URL, if it has one the deploy mode allows calling.
async fn resolve_url(call: &Call) -> ApiResult<String> {
    let Some(url) = call.target.url.clone() else {
        let body = NoUrl {
            error: "workspace has no URL",
            status: call.target.status.clone(),
        };
        return Err(ApiError::with_body(StatusCode::SERVICE_UNAVAILABLE, &body));
    };
    let policy = AddressPolicy::from_config(&call.state.config);
    if !call.state.messaging.allows_url(policy, &url).await {
        return Err(ApiError::BadRequest(
            "workspace URL is not publicly routable".into(),
        ));
    }
    Ok(url)
}

/// The ceiling of one call: `X-Timeout` when positive, else the configured total.
fn call_limit(headers: &HeaderMap, config: &crate::ApiConfig) -> Duration {
    headers
        .get(TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|seconds| *seconds > 0)
        .map_or(config.a2a_total_timeout(), Duration::from_secs)
}

/// Sends the request and turns what happened into the answer.
async fn forward(call: Call, url: &str, total: Duration, started: Instant) -> ApiResult<Response> {
    let state = call.state.clone();
    let idle = state.messaging.idle_window(call.target_id, &state.config);
    let mut watch = IdleWatch::new(&state.events, call.target_id, idle, total);
    let body = Bytes::copy_from_slice(call.request.text.get().as_bytes());
    let sent = agent::send(&state.messaging.client, url, body, &mut watch).await;
    let duration = started.elapsed();
    let response = match sent {
        Ok(response) => response,
        Err(failure) => return call.failed(failure, duration).await,
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_success() && agent::is_event_stream(&response) {
        let tasks = state.messaging.tasks().clone();
        let body = agent::relay(&tasks, response, watch, move |last| async move {
            let answer = last.map(Answer::of);
            call.answered(status, answer.as_ref(), duration).await;
        });
        return Ok(stream_response(status, body));
    }
    match agent::read(response, &mut watch).await {
        Ok(answer) => call.read(status, answer, duration).await,
        Err(_) => {
            let body = Unread {
                delivery_confirmed: status.as_u16() < 400,
                error: "failed to read agent response",
            };
            Err(ApiError::with_body(StatusCode::BAD_GATEWAY, &body))
        }
    }
}

fn stream_response(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What a failed call answers, after its activity row (`a2a_proxy_helpers.go:33-143`).
pub(super) async fn answer_failure(call: &Call, failure: &Failure) -> ApiResult<Response> {
    match failure {
        Failure::Busy(_) => call.queue_busy().await,
        Failure::Refused(_) => {
            call.mark_unreachable().await;
            Err(bad_gateway("failed to reach workspace agent"))
        }
        Failure::Other(_) => Err(bad_gateway("failed to reach workspace agent")),
    }
}

pub(super) fn bad_gateway(message: &str) -> ApiError {
    ApiError::with_body(StatusCode::BAD_GATEWAY, &error_body(message))
}

pub(super) fn error_body(message: &str) -> ErrorBody {
    ErrorBody {
        code: None,
        error: message.to_string(),
    }
}

pub(super) fn busy_body() -> Busy {
    Busy {
        busy: true,
        error: "workspace agent busy — retry after a short backoff",
        retry_after: 30,
    }
}
