//! `GET|PATCH /workspaces/{id}/config`: the workspace's JSON config document
//! (`handlers/config.go` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;

use super::types::{ConfigView, StatusOnly};
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// Largest accepted PATCH body (`handlers/config.go:50` at 624ef4d0).
pub const MAX_CONFIG_BYTES: usize = 256 << 10;

/// `GET /workspaces/{id}/config`: `{"data": <document>}`, `{}` when there is none.
#[utoipa::path(get, path = "/workspaces/{id}/config", tag = "config",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The document", body = ConfigView),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<ConfigView>, ApiError> {
    let data = store::workspace_config::get(&state.db, id)
        .await
        .map_err(ApiError::internal("query failed"))?;
    Ok(Json(ConfigView {
        data: data.unwrap_or_else(|| serde_json::json!({})),
    }))
}

/// `PATCH /workspaces/{id}/config`: merges the body into the document (PostgreSQL `||`: top-level
/// keys of an object replace the stored ones).
#[utoipa::path(patch, path = "/workspaces/{id}/config", tag = "config",
    params(("id" = String, Path, description = "Workspace id")),
    request_body(content = Object, description = "A JSON object, at most 256 KiB"),
    responses(
        (status = 200, description = "Merged", body = StatusOnly),
        (status = 400, description = "invalid workspace ID / invalid JSON (or not an object)", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 413, description = "body too large or unreadable", body = ErrorBody),
        (status = 500, description = "failed to update config", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> Result<Json<StatusOnly>, ApiError> {
    if body.len() > MAX_CONFIG_BYTES {
        return Err(ApiError::PayloadTooLarge(
            "body too large or unreadable".to_string(),
        ));
    }
    // Only an object merges key by key; the original also took other JSON values, which
    // PostgreSQL's `||` turns into an array of the old document and the value.
    let patch: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("invalid JSON".to_string()))?;
    let patch = serde_json::Value::Object(patch);
    store::workspace_config::merge(&state.db, id, &patch)
        .await
        .map_err(|error| {
            if error.is_missing_reference() {
                ApiError::NotFound("workspace not found".to_string())
            } else {
                ApiError::internal("failed to update config")(error)
            }
        })?;
    Ok(Json(StatusOnly { status: "updated" }))
}
