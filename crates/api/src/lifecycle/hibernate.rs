//! `POST /workspaces/{id}/hibernate` (`workspace_restart.go:239-350` at 624ef4d0), with the
//! compatibility choices: the instance IS stopped, and `?force=true` does hibernate.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;

use super::{ActiveTasks, LOOKUP_FAILED, query_value};
use crate::error::{ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::provisioner::flow;
use crate::{ApiError, AppState};

/// `POST /workspaces/{id}/hibernate`: an online or degraded workspace stops its instance and
/// becomes `hibernated` (`WORKSPACE_HIBERNATED {"name","tier"}`); `/restart` wakes it.
#[utoipa::path(post, path = "/workspaces/{id}/hibernate", tag = "lifecycle",
    params(("id" = Uuid, Path), ("force" = Option<bool>, Query)), responses(
    (status = 200, description = "Hibernated", body = StatusBody),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not authorised", body = ErrorBody),
    (status = 404, description = "Not online or degraded", body = ErrorBody),
    (status = 409, description = "Tasks are running; ?force=true to hibernate anyway", body = ActiveTasks),
    (status = 500, description = "Lookup failed", body = ErrorBody)))]
pub async fn hibernate(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    RawQuery(query): RawQuery,
) -> Result<Json<StatusBody>, ApiError> {
    let target = store::provisioning::target(&state.db, id)
        .await
        .context(LOOKUP_FAILED)?
        .filter(|t| t.status == "online" || t.status == "degraded")
        .ok_or_else(|| {
            ApiError::NotFound(
                "workspace not found or not in a hibernatable state (must be online or degraded)"
                    .into(),
            )
        })?;
    let force = query_value(query.as_deref(), "force") == Some("true");
    if target.active_tasks > 0 && !force {
        let body = ActiveTasks {
            active_tasks: target.active_tasks,
            error: "workspace has active tasks; use ?force=true to terminate them",
        };
        return Err(ApiError::with_body(StatusCode::CONFLICT, &body));
    }
    if store::provisioning::claim_hibernation(&state.db, id, force)
        .await
        .context(LOOKUP_FAILED)?
    {
        for failure in flow::stop_instances(&state, &[id]).await {
            tracing::warn!(workspace_id = %id, %failure, "hibernate: stop failed");
        }
        let payload = json!({ "name": target.name, "tier": target.tier });
        flow::record_stopped(&state, id, "hibernated", "WORKSPACE_HIBERNATED", &payload)
            .await
            .context(LOOKUP_FAILED)?;
    }
    Ok(Json(StatusBody {
        status: "hibernated",
    }))
}
