//! `POST /workspaces/{id}/pause` and `/resume` (`workspace_restart.go:593-727` at 624ef4d0).

use axum::Json;
use axum::extract::State;
use serde_json::json;

use super::{LOOKUP_FAILED, Paused, Resumed, check_ancestors, no_provisioner};
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::provisioner::flow;
use crate::{ApiError, AppState};

/// `POST /workspaces/{id}/pause`: the workspace and its live, unpaused descendants, root first:
/// instance stopped, `paused`, `WORKSPACE_PAUSED {"name"}`. Works without a provisioner.
#[utoipa::path(post, path = "/workspaces/{id}/pause", tag = "lifecycle",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "Paused, with how many", body = Paused),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not authorised", body = ErrorBody),
    (status = 404, description = "Unknown or already paused", body = ErrorBody),
    (status = 500, description = "Lookup failed", body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<Paused>, ApiError> {
    let members = store::provisioning::subtree(&state.db, id, false)
        .await
        .context(LOOKUP_FAILED)?;
    if members.is_empty() {
        return Err(ApiError::NotFound(
            "workspace not found or already paused".into(),
        ));
    }
    for member in &members {
        // A failed stop is only logged, as the original does; the pause stands.
        for failure in flow::stop_instances(&state, &[member.id]).await {
            tracing::warn!(workspace_id = %member.id, %failure, "pause: stop failed");
        }
        let payload = json!({ "name": member.name });
        flow::record_stopped(&state, member.id, "paused", "WORKSPACE_PAUSED", &payload)
            .await
            .context(LOOKUP_FAILED)?;
    }
    Ok(Json(Paused {
        paused_count: members.len(),
        status: "paused",
    }))
}

/// `POST /workspaces/{id}/resume`: the workspace and its paused descendants go `provisioning`
/// and are provisioned again.
#[utoipa::path(post, path = "/workspaces/{id}/resume", tag = "lifecycle",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "Provisioning, with how many", body = Resumed),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not authorised", body = ErrorBody),
    (status = 404, description = "Unknown or not paused", body = ErrorBody),
    (status = 409, description = "A parent is paused", body = ErrorBody),
    (status = 500, description = "Lookup failed", body = ErrorBody),
    (status = 503, description = "No provisioner", body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<Resumed>, ApiError> {
    let members = store::provisioning::subtree(&state.db, id, true)
        .await
        .context(LOOKUP_FAILED)?;
    if members.is_empty() {
        return Err(ApiError::NotFound(
            "workspace not found or not paused".into(),
        ));
    }
    if state.provisioning.backend().is_none() {
        return Err(no_provisioner());
    }
    check_ancestors(&state, id).await?;
    let mut tx = state.db.begin().await.context(LOOKUP_FAILED)?;
    for member in &members {
        flow::begin(
            &mut tx,
            member.id,
            &member.name,
            member.tier,
            &member.runtime,
        )
        .await
        .context(LOOKUP_FAILED)?;
    }
    tx.commit().await.context(LOOKUP_FAILED)?;
    for member in &members {
        flow::spawn_provision(&state, member.id);
    }
    Ok(Json(Resumed {
        resumed_count: members.len(),
        status: "provisioning",
    }))
}
