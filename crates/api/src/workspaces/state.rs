//! `GET /workspaces/{id}/state`: what an agent polls to learn it was paused or removed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use store::workspaces::WorkspaceStatus;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// 200 for a live workspace; 404 with `deleted: true` (and `status: removed` when the row is
/// still there) for a gone one.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    pub workspace_id: Uuid,
}

/// `GET /workspaces/{id}/state` (the workspace's own token, checked by its guard).
#[utoipa::path(get, path = "/workspaces/{id}/state", tag = "workspaces",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "Live", body = StateView),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not this workspace's token", body = ErrorBody),
    (status = 404, description = "Gone", body = StateView),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn state(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<(StatusCode, Json<StateView>), ApiError> {
    let status = store::workspaces::status(&state.db, id)
        .await
        .context("query failed")?;
    let gone = |status: Option<String>| StateView {
        deleted: true,
        paused: None,
        status,
        workspace_id: id,
    };
    Ok(match status {
        None => (StatusCode::NOT_FOUND, Json(gone(None))),
        Some(WorkspaceStatus::Removed) => (
            StatusCode::NOT_FOUND,
            Json(gone(Some(WorkspaceStatus::Removed.to_string()))),
        ),
        Some(status) => (
            StatusCode::OK,
            Json(StateView {
                deleted: false,
                paused: Some(status == WorkspaceStatus::Paused),
                status: Some(status.to_string()),
                workspace_id: id,
            }),
        ),
    })
}
