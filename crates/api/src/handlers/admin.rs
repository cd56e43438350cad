//! Admin routes: the test-token bootstrap, attaching an EC2 instance, and liveness.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::json::format_go_time;
use crate::{ApiError, AppState};

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("invalid workspace ID".to_string()))
}

/// `GET /admin/workspaces/{id}/test-token`: mints a workspace token (the route's own gate decides
/// whether this is enabled at all).
pub async fn test_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let status = store::workspaces::status(&state.db, id)
        .await
        .map_err(ApiError::internal("failed to mint token"))?;
    if status.is_none_or(|s| s == "removed") {
        return Err(ApiError::NotFound("workspace not found".to_string()));
    }
    let token = store::tokens::mint_workspace_token(&state.db, id)
        .await
        .map_err(ApiError::internal("failed to mint token"))?;
    Ok(Json(json!({ "auth_token": token, "workspace_id": id })))
}

/// `PUT /admin/workspaces/{id}/instance` with `{"instance_id":"i-…"|null}`: how a control plane
/// attaches the EC2 instance that holds a workspace's files.
pub async fn set_instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
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
        .map_err(ApiError::internal("failed to update instance"))?;
    if !found {
        return Err(ApiError::NotFound("workspace not found".to_string()));
    }
    Ok(Json(
        json!({ "status": "updated", "instance_id": instance_id }),
    ))
}

/// `i-` followed by 8 or 17 lowercase hex digits.
fn is_instance_id(value: &str) -> bool {
    value.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `GET /admin/liveness`: the last tick of each background loop.
pub async fn liveness(State(state): State<AppState>) -> Json<Value> {
    let now = chrono::Utc::now();
    let subsystems: serde_json::Map<String, Value> = state
        .liveness
        .snapshot()
        .into_iter()
        .map(|(name, tick)| {
            let seconds_ago = (now - tick).num_seconds().max(0);
            (
                name,
                json!({ "last_tick_at": format_go_time(&tick), "seconds_ago": seconds_ago }),
            )
        })
        .collect();
    Json(json!({ "subsystems": subsystems }))
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
