//! The busy queue (`a2a_queue`): requests a busy agent could not take wait here and are sent
//! one per heartbeat that reports spare capacity (the original's `handlers/a2a_queue.go` at
//! 624ef4d0); their status route and the operators' drop of stale ones.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::call::Call;
use super::payload::Normalised;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::{ApiError, AppState};

/// Sends the workspace's next queued request, if any, and records how it went. Runs in the
/// background after a heartbeat with spare capacity.
pub async fn drain_one(state: AppState, workspace_id: Uuid) {
    let claimed = match store::messaging::claim_next(&state.db, workspace_id).await {
        Ok(Some(item)) => item,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(error = %error, "cannot claim a queued A2A request");
            return;
        }
    };
    let outcome = match dispatch(&state, workspace_id, &claimed).await {
        Ok(()) => store::messaging::complete(&state.db, claimed.id).await,
        Err(reason) => store::messaging::retry_or_fail(&state.db, claimed.id, &reason).await,
    };
    if let Err(error) = outcome {
        tracing::warn!(error = %error, queue_id = %claimed.id, "cannot record a drained request");
    }
}

/// Delivers one queued request like a new call from its original caller; `Err` says why not.
async fn dispatch(
    state: &AppState,
    workspace_id: Uuid,
    item: &store::messaging::ClaimedItem,
) -> Result<(), String> {
    let target = super::proxy::cached_target(state, workspace_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("workspace not found")?;
    let method = item.body["method"].as_str().unwrap_or_default().to_string();
    let request = Normalised::new(item.body.clone(), method);
    let call = Call::new(state.clone(), workspace_id, target, item.caller_id, request);
    let total = state.config.a2a_total_timeout();
    let answer = super::proxy::deliver(call, total, Instant::now())
        .await
        .map_err(|error| error.to_string())?;
    if answer.status() == StatusCode::ACCEPTED {
        return Err("workspace agent busy".to_string());
    }
    // A streamed answer is read to its end: the agent finishes the task either way.
    let body = axum::body::to_bytes(answer.into_body(), super::agent::MAX_ANSWER_BYTES).await;
    body.map(drop).map_err(|error| error.to_string())
}

/// A queued request's state (the request itself and its caller are never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStatus {
    pub attempts: i32,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::go_time_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::go_time_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::go_time_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub priority: i16,
    pub queue_id: Uuid,
    /// `queued`, `dispatched`, `completed`, `dropped` or `failed`.
    pub status: String,
    pub workspace_id: Uuid,
}

/// `GET /workspaces/{id}/a2a/queue/{queue_id}`: the caller that queued a request, or its target,
/// follows it; to anyone else it does not exist.
#[utoipa::path(get, path = "/workspaces/{id}/a2a/queue/{queue_id}", tag = "a2a",
    params(("id" = Uuid, Path), ("queue_id" = Uuid, Path),
           ("X-Workspace-ID" = Option<String>, Header, description = "The asking workspace")),
    responses(
    (status = 200, description = "The request's state", body = QueueStatus),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "The named workspace's token is missing or wrong", body = ErrorBody),
    (status = 403, description = "The caller named in X-Workspace-ID is invalid", body = ErrorBody),
    (status = 404, description = "Not found, or not the caller's", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<QueueStatus>> {
    let not_found = || ApiError::NotFound("queue item not found".into());
    // The path's workspace proves nothing: the caller's own token must back its name.
    let caller = super::caller::identify(&state, &headers, Uuid::nil())
        .await?
        .ok_or_else(not_found)?;
    let queue_id = Uuid::parse_str(&ids.1).map_err(|_| not_found())?;
    let item = store::messaging::queue_item(&state.db, queue_id)
        .await
        .context("lookup failed")?
        .filter(|item| item.caller_id == Some(caller) || item.workspace_id == caller)
        .ok_or_else(not_found)?;
    Ok(Json(QueueStatus {
        attempts: item.attempts,
        completed_at: item.completed_at,
        dispatched_at: item.dispatched_at,
        enqueued_at: item.enqueued_at,
        expires_at: item.expires_at,
        last_error: item.last_error,
        priority: item.priority,
        queue_id: item.id,
        status: item.status,
        workspace_id: item.workspace_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropStaleQuery {
    /// Requests queued longer than this many minutes are dropped (60 by default).
    #[serde(default)]
    max_age_minutes: Option<String>,
    /// Only this workspace's requests.
    #[serde(default)]
    workspace_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dropped {
    pub dropped: u64,
}

/// `POST /admin/a2a-queue/drop-stale`: drops requests that waited too long.
#[utoipa::path(post, path = "/admin/a2a-queue/drop-stale", tag = "a2a",
    params(DropStaleQuery), responses(
    (status = 200, description = "How many were dropped", body = Dropped),
    (status = 400, description = "Invalid max_age_minutes or workspace_id", body = ErrorBody),
    (status = 401, description = "Not an operator", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn drop_stale(
    State(state): State<AppState>,
    Query(query): Query<DropStaleQuery>,
) -> ApiResult<Json<Dropped>> {
    let max_age = match query.max_age_minutes.as_deref() {
        None | Some("") => 60,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(i64::from(i32::MAX)),
            _ => {
                let message = "max_age_minutes must be a positive integer";
                return Err(ApiError::BadRequest(message.into()));
            }
        },
    };
    let workspace = match query.workspace_id.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            Uuid::parse_str(text)
                .map_err(|_| ApiError::BadRequest("workspace_id must be a UUID".into()))?,
        ),
    };
    let dropped = store::messaging::drop_stale(&state.db, max_age, workspace)
        .await
        .context("failed to drop stale items")?;
    Ok(Json(Dropped { dropped }))
}
