//! `POST /workspaces/{id}/restart` (`workspace_restart.go:71-233` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::{
    LOOKUP_FAILED, RestartAnswer, RestartNoop, RestartRequest, Restarted, check_ancestors,
    no_provisioner, query_value,
};
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::provisioner::flow;
use crate::{ApiError, AppState};

/// `POST /workspaces/{id}/restart`: stop, then provision again, in the background.
#[utoipa::path(post, path = "/workspaces/{id}/restart", tag = "lifecycle",
    params(("id" = Uuid, Path), ("reset" = Option<bool>, Query)),
    request_body(content = Option<RestartRequest>),
    responses(
    (status = 200, description = "Restarting (or, for an external workspace, nothing to do)", body = RestartAnswer),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not authorised", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 409, description = "A parent is paused", body = ErrorBody),
    (status = 500, description = "Lookup failed", body = ErrorBody),
    (status = 503, description = "No provisioner", body = ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Parse errors are ignored, as the original does.
    let request: RestartRequest = serde_json::from_slice(&body).unwrap_or_default();
    let target = store::provisioning::target(&state.db, id)
        .await
        .context(LOOKUP_FAILED)?
        .filter(|t| t.status != "removed")
        .ok_or_else(ApiError::workspace_not_found)?;
    check_ancestors(&state, id).await?;
    if target.runtime == "external" {
        return Ok(Json(RestartNoop {
            message: "external workspaces are operator-driven — restart your local poller; platform has nothing to restart",
            runtime: "external",
            status: "noop",
        })
        .into_response());
    }
    if state.provisioning.backend().is_none() {
        return Err(no_provisioner());
    }
    let mut tx = state.db.begin().await.context(LOOKUP_FAILED)?;
    flow::begin(&mut tx, id, &target.name, target.tier, &target.runtime)
        .await
        .context(LOOKUP_FAILED)?;
    tx.commit().await.context(LOOKUP_FAILED)?;
    flow::spawn_restart(&state, id);
    let reset = request.reset || query_value(query.as_deref(), "reset") == Some("true");
    Ok(Json(Restarted {
        // The control plane receives no files: the template choice has no effect there.
        config_dir: request
            .template
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "existing-volume".to_string()),
        reset_session: reset,
        status: "provisioning",
    })
    .into_response())
}
