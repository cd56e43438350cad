//! `GET|POST /workspaces/{id}/memory`, `GET|DELETE /workspaces/{id}/memory/{key}`: a workspace's
//! key-value store with optimistic versions (the original's `handlers/memory.go` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::memories::KvEntry;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    key: String,
    #[schema(value_type = Object)]
    value: Value,
    version: i64,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::go_time_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
}

impl From<KvEntry> for Entry {
    fn from(row: KvEntry) -> Self {
        Self {
            key: row.key,
            value: row.value,
            version: row.version,
            expires_at: row.expires_at,
            updated_at: row.updated_at,
        }
    }
}

/// `GET /workspaces/{id}/memory`: the live entries, by key.
#[utoipa::path(get, path = "/workspaces/{id}/memory", tag = "memories",
    params(("id" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Live entries", body = Vec<Entry>),
    (status = 401, description = "Not this workspace", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Json<Vec<Entry>>> {
    let rows = store::memories::kv_list(&state.db, workspace_id)
        .await
        .context("query failed")?;
    Ok(Json(rows.into_iter().map(Entry::from).collect()))
}

/// `GET /workspaces/{id}/memory/{key}`.
#[utoipa::path(get, path = "/workspaces/{id}/memory/{key}", tag = "memories",
    params(("id" = Uuid, Path), ("key" = String, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "The entry", body = Entry),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "No live entry of this key", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, key)): Path<(String, String)>,
) -> ApiResult<Json<Entry>> {
    let row = store::memories::kv_get(&state.db, workspace_id, &key)
        .await
        .context("query failed")?
        .ok_or_else(|| ApiError::NotFound("key not found".to_string()))?;
    Ok(Json(row.into()))
}

/// `DELETE /workspaces/{id}/memory/{key}`: 200 whether or not the key existed.
#[utoipa::path(delete, path = "/workspaces/{id}/memory/{key}", tag = "memories",
    params(("id" = Uuid, Path), ("key" = String, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Gone", body = StatusBody),
    (status = 401, description = "Not this workspace", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, key)): Path<(String, String)>,
) -> ApiResult<Json<StatusBody>> {
    store::memories::kv_delete(&state.db, workspace_id, &key)
        .await
        .context("failed to delete")?;
    Ok(Json(StatusBody { status: "deleted" }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetBody {
    #[serde(default)]
    key: String,
    /// Any JSON; required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object)]
    value: Option<Value>,
    /// Seconds until the entry expires; without it the entry never does.
    ttl_seconds: Option<i64>,
    /// Write only if the entry is at this version (0: only if it does not exist).
    if_match_version: Option<i64>,
}

/// A present `value`, `null` included, is `Some`; only an absent one is `None`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetAnswer {
    status: &'static str,
    key: String,
    version: i64,
}

/// The 409 of a stale `if_match_version`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionMismatch {
    error: &'static str,
    expected_version: i64,
    current_version: Option<i64>,
}

/// `POST /workspaces/{id}/memory`: sets an entry; with `if_match_version`, only at that version.
#[utoipa::path(post, path = "/workspaces/{id}/memory", tag = "memories",
    params(("id" = Uuid, Path)), request_body = SetBody, responses(
    (status = 200, description = "Stored, with the new version", body = SetAnswer),
    (status = 400, description = "Invalid body, missing key or value", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 409, description = "Stale version", body = VersionMismatch)))]
pub async fn set(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    body: Bytes,
) -> ApiResult<Json<SetAnswer>> {
    let body: SetBody = parse_body(&body, "invalid request body")?;
    if body.key.is_empty() {
        return Err(ApiError::BadRequest("key is required".to_string()));
    }
    // The original answered 500 here (its cast of an empty value failed).
    let value = body
        .value
        .ok_or_else(|| ApiError::BadRequest("value is required".to_string()))?;
    let expires_at = body
        .ttl_seconds
        .map(|ttl| Utc::now() + chrono::Duration::seconds(ttl));
    let db = &state.db;
    let version = match body.if_match_version {
        None => store::memories::kv_upsert(db, workspace_id, &body.key, &value, expires_at)
            .await
            .context("failed to set memory")?,
        Some(expected) => {
            set_if_version(
                &state,
                workspace_id,
                &body.key,
                &value,
                expires_at,
                expected,
            )
            .await?
        }
    };
    Ok(Json(SetAnswer {
        status: "ok",
        key: body.key,
        version,
    }))
}

/// The conditional write: at `expected`, or a creation when `expected` is 0; 409 otherwise.
async fn set_if_version(
    state: &AppState,
    workspace_id: Uuid,
    key: &str,
    value: &Value,
    expires_at: Option<DateTime<Utc>>,
    expected: i64,
) -> ApiResult<i64> {
    let db = &state.db;
    let updated =
        store::memories::kv_update_if_version(db, workspace_id, key, value, expires_at, expected)
            .await
            .context("failed to set memory")?;
    if let Some(version) = updated {
        return Ok(version);
    }
    if expected == 0
        && store::memories::kv_create(db, workspace_id, key, value, expires_at)
            .await
            .context("failed to set memory")?
    {
        return Ok(1);
    }
    let current = store::memories::kv_version(db, workspace_id, key)
        .await
        .context("failed to probe current version")?;
    let error = match current {
        None => "if_match_version mismatch: key does not exist",
        Some(_) => "if_match_version mismatch",
    };
    let mismatch = VersionMismatch {
        error,
        expected_version: expected,
        current_version: current,
    };
    Err(ApiError::with_body(StatusCode::CONFLICT, &mismatch))
}
