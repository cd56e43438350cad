//! Admin routes: the test-token bootstrap, attaching an EC2 instance, and liveness.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::format_go_time;
use crate::{ApiError, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct TestToken {
    pub auth_token: String,
    pub workspace_id: Uuid,
}

/// `PUT /admin/workspaces/{id}/instance`'s body. Read key by key (`null` detaches, a missing key
/// is refused), so this type only documents it.
#[derive(Debug, ToSchema)]
pub struct InstanceBody {
    /// `i-` and 8 or 17 lowercase hex digits, or `null` to detach.
    pub instance_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceSet {
    pub instance_id: Option<String>,
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubsystemTick {
    pub last_tick_at: String,
    pub seconds_ago: i64,
}

/// The last tick of each background loop, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct LivenessView {
    pub subsystems: BTreeMap<String, SubsystemTick>,
}

/// `GET /admin/workspaces/{id}/test-token`: mints a workspace token (the route's own gate decides
/// whether this is enabled at all).
#[utoipa::path(get, path = "/admin/workspaces/{id}/test-token", tag = "admin",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "A fresh workspace token", body = TestToken),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "ADMIN_TOKEN required", body = ErrorBody),
    (status = 404, description = "Disabled, or unknown workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn test_token(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<TestToken>, ApiError> {
    let status = store::workspaces::status(&state.db, id)
        .await
        .context("failed to mint token")?;
    // Any row, a removed workspace's too, as the original (`handlers/admin_test_token.go` at
    // 624ef4d0 looks the id up without a status condition).
    if status.is_none() {
        return Err(ApiError::workspace_not_found());
    }
    let token = store::tokens::mint_workspace_token(&state.db, id)
        .await
        .context("failed to mint token")?;
    Ok(Json(TestToken {
        auth_token: token,
        workspace_id: id,
    }))
}

/// `PUT /admin/workspaces/{id}/instance` with `{"instance_id":"i-…"|null}`: how a control plane
/// attaches the EC2 instance that holds a workspace's files.
#[utoipa::path(put, path = "/admin/workspaces/{id}/instance", tag = "admin",
    params(("id" = Uuid, Path)), request_body = InstanceBody, responses(
    (status = 200, description = "Attached or detached", body = InstanceSet),
    (status = 400, description = "Invalid id or instance id", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 413, description = "Body too large"),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn set_instance(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> Result<Json<InstanceSet>, ApiError> {
    let invalid = || ApiError::BadRequest("invalid instance_id".to_string());
    let body: serde_json::Map<String, Value> =
        serde_json::from_slice(&body).map_err(|_| invalid())?;
    let instance_id = match body.get("instance_id") {
        Some(Value::Null) => None,
        Some(Value::String(value)) if is_instance_id(value) => Some(value.as_str()),
        _ => return Err(invalid()),
    };
    let found = store::workspaces::set_instance_id(&state.db, id, instance_id)
        .await
        .context("failed to update instance")?;
    if !found {
        return Err(ApiError::workspace_not_found());
    }
    Ok(Json(InstanceSet {
        instance_id: instance_id.map(str::to_string),
        status: "updated",
    }))
}

/// `i-` followed by 8 or 17 lowercase hex digits.
fn is_instance_id(value: &str) -> bool {
    value.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `GET /admin/liveness`: the last tick of each background loop.
#[utoipa::path(get, path = "/admin/liveness", tag = "admin", responses(
    (status = 200, description = "Last tick per background loop", body = LivenessView),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn liveness(State(state): State<AppState>) -> Json<LivenessView> {
    let now = chrono::Utc::now();
    let subsystems = state
        .liveness
        .snapshot()
        .into_iter()
        .map(|(name, tick)| {
            let tick_view = SubsystemTick {
                last_tick_at: format_go_time(&tick),
                seconds_ago: (now - tick).num_seconds().max(0),
            };
            (name, tick_view)
        })
        .collect();
    Json(LivenessView { subsystems })
}

#[cfg(test)]
mod tests {
    use super::is_instance_id;

    #[test]
    fn instance_ids_are_validated() {
        assert!(is_instance_id("i-0123abcd"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(!is_instance_id("i-0123ABCD"));
        assert!(!is_instance_id("i-012345"));
        assert!(!is_instance_id("x-0123abcd"));
        assert!(!is_instance_id("i-0123abcd; rm -rf /"));
    }
}
