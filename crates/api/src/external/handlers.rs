//! `GET /workspaces/{id}/external/connection` and `POST /workspaces/{id}/external/rotate`
//! (`handlers/external_rotate.go` at 624ef4d0).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use uuid::Uuid;

use super::{ConnectionEnvelope, ConnectionInfo, platform_url};
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// Refuses (400, naming the runtime) unless the workspace's runtime, read whatever its status,
/// is `external` (`handlers/external_rotate.go:158-164` at 624ef4d0).
async fn require_external(
    state: &AppState,
    id: Uuid,
    error: &str,
    hint: Option<&str>,
) -> Result<(), ApiError> {
    let runtime = store::workspace_config::runtime(&state.db, id)
        .await
        .map_err(ApiError::internal("lookup failed"))?
        .ok_or_else(|| ApiError::NotFound("workspace not found".to_string()))?;
    if runtime == "external" {
        return Ok(());
    }
    let mut body = serde_json::json!({ "error": error, "runtime": runtime });
    if let Some(hint) = hint {
        body["hint"] = serde_json::Value::from(hint);
    }
    Err(ApiError::WithBody {
        status: StatusCode::BAD_REQUEST,
        body,
    })
}

/// `GET /workspaces/{id}/external/connection`: the block again, without a token (nothing is
/// minted or written).
#[utoipa::path(get, path = "/workspaces/{id}/external/connection", tag = "external",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The connection block, auth_token empty", body = ConnectionEnvelope),
        (status = 400, description = "invalid workspace ID / not an external workspace", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 500, description = "lookup failed", body = ErrorBody)))]
pub async fn connection(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<ConnectionEnvelope>, ApiError> {
    let only_external = "connection payload is only valid for runtime=external workspaces";
    require_external(&state, id, only_external, None).await?;
    let base = platform_url(&state.config, &headers, &uri);
    Ok(Json(ConnectionEnvelope {
        connection: ConnectionInfo::build(&base, id, ""),
    }))
}

/// `POST /workspaces/{id}/external/rotate`: revokes every live token of the workspace (the
/// caller's own too), mints one and records `EXTERNAL_CREDENTIALS_ROTATED`, all in one
/// transaction, so a failure leaves the old tokens valid rather than none.
#[utoipa::path(post, path = "/workspaces/{id}/external/rotate", tag = "external",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The block with the new token, shown once", body = ConnectionEnvelope),
        (status = 400, description = "invalid workspace ID / not an external workspace", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 500, description = "revoke failed / mint failed", body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<ConnectionEnvelope>, ApiError> {
    let only_external = "rotate is only valid for runtime=external workspaces";
    let hint = "use POST /workspaces/:id/restart for non-external runtimes";
    require_external(&state, id, only_external, Some(hint)).await?;
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(ApiError::internal("revoke failed"))?;
    store::tokens::revoke_for_workspaces(&mut *tx, &[id])
        .await
        .map_err(ApiError::internal("revoke failed"))?;
    let token = store::tokens::mint_workspace_token(&mut *tx, id)
        .await
        .map_err(ApiError::internal("mint failed"))?;
    let payload = serde_json::json!({ "workspace_id": id });
    store::events::record(&mut *tx, "EXTERNAL_CREDENTIALS_ROTATED", Some(id), &payload)
        .await
        .map_err(ApiError::internal("mint failed"))?;
    tx.commit()
        .await
        .map_err(ApiError::internal("mint failed"))?;
    tracing::info!(workspace_id = %id, "external: credentials rotated");
    let base = platform_url(&state.config, &headers, &uri);
    Ok(Json(ConnectionEnvelope {
        connection: ConnectionInfo::build(&base, id, &token),
    }))
}
