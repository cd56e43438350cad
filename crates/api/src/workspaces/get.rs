//! `GET /workspaces/{id}`: the open projection, cached; 410 for a removed workspace.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use store::workspaces::WorkspaceStatus;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::views::PublicView;
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::format_go_time;
use crate::workspace_cache::Lookup;
use crate::{ApiError, AppState};

const REMOVED_HINT: &str = "Regenerate workspace + token from the canvas → Tokens tab";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// `true` shows a removed workspace instead of answering 410.
    include_removed: Option<String>,
}

/// 410 for a removed workspace: when, and what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    pub error: &'static str,
    pub hint: &'static str,
    pub id: Uuid,
    pub removed_at: Option<String>,
}

/// `GET /workspaces/{id}` (open). Live workspaces' bodies are cached (`workspace_cache`).
#[utoipa::path(get, path = "/workspaces/{id}", tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id"), GetQuery),
    responses(
    (status = 200, description = "The open projection", body = PublicView),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 410, description = "Removed", body = Removed),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<GetQuery>,
) -> Result<Response, ApiError> {
    let cache = state.events.workspace_cache();
    // `WORKSPACE_CACHE=false`: no lookup and no fill, every read is a query (counted a miss).
    let ticket = if state.config.disable_workspace_cache {
        metrics::counter!(crate::workspace_cache::MISSES_TOTAL).increment(1);
        None
    } else {
        match cache.lookup(id) {
            Lookup::Hit(body) => return Ok(json_body(body)),
            Lookup::Miss(ticket) => Some(ticket),
        }
    };
    let row = store::workspaces::get_shared(&state.db, id)
        .await
        .context("query failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    let removed = WorkspaceStatus::from_column(&row.status) == WorkspaceStatus::Removed;
    if removed && query.include_removed.as_deref() != Some("true") {
        let answer = Removed {
            error: "workspace removed",
            hint: REMOVED_HINT,
            id,
            removed_at: row.updated_at.as_ref().map(format_go_time),
        };
        return Err(ApiError::with_body(StatusCode::GONE, &answer));
    }
    let body = serde_json::to_vec(&PublicView::from(&row))
        .map_err(ApiError::internal("failed to encode the workspace"))?;
    let body = Bytes::from(body);
    // Only live rows: their body is the same with or without `include_removed`.
    if let Some(ticket) = ticket.filter(|_| !removed) {
        cache.fill(ticket, id, body.clone());
    }
    Ok(json_body(body))
}

/// A 200 with an already encoded JSON body.
fn json_body(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}
