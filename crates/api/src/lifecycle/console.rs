//! `GET /workspaces/{id}/console` (`workspace_bootstrap.go:107-126` at 624ef4d0).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ConsoleOutput, plain};
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// `GET /workspaces/{id}/console` (admin): the instance's serial console, from the control plane.
#[utoipa::path(get, path = "/workspaces/{id}/console", tag = "lifecycle",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "Console output", body = ConsoleOutput),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 501, description = "No control plane", body = ErrorBody),
    (status = 502, description = "The control plane failed", body = ErrorBody)))]
pub async fn console(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<ConsoleOutput>, ApiError> {
    let Some(backend) = state.provisioning.backend() else {
        return Err(plain(
            StatusCode::NOT_IMPLEMENTED,
            "console output unavailable on this deployment (no control plane)",
        ));
    };
    match backend.console(id).await {
        Ok(output) => Ok(Json(ConsoleOutput { output })),
        Err(error) => {
            tracing::warn!(workspace_id = %id, %error, "console fetch failed");
            Err(plain(
                StatusCode::BAD_GATEWAY,
                "control plane returned an error fetching console output",
            ))
        }
    }
}
