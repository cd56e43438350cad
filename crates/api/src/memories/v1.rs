//! `POST|GET /workspaces/{id}/memories`, `PATCH|DELETE /workspaces/{id}/memories/{memoryId}`:
//! what agents commit and recall (the original's `handlers/memories.go` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::memories::{MemoryRow, MemorySearch, TextQuery};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::redact::{escape_memory_delimiter, redact_secrets};
use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

const SCOPES: [&str; 3] = ["LOCAL", "TEAM", "GLOBAL"];
const MAX_NAMESPACE_BYTES: usize = 50;
const DEFAULT_NAMESPACE: &str = "general";
const DEFAULT_LIMIT: i64 = 50;
const NOT_OWNED: &str = "memory not found or not owned by this workspace";

#[derive(Debug, Deserialize, ToSchema)]
pub struct CommitBody {
    content: Option<String>,
    /// `LOCAL`, `TEAM` or `GLOBAL`.
    scope: Option<String>,
    /// At most 50 bytes; `general` when empty.
    namespace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Committed {
    id: Uuid,
    scope: String,
    namespace: String,
}

/// `POST /workspaces/{id}/memories`: stores a memory, its secrets redacted first.
#[utoipa::path(post, path = "/workspaces/{id}/memories", tag = "memories",
    params(("id" = Uuid, Path)), request_body = CommitBody, responses(
    (status = 201, description = "Stored", body = Committed),
    (status = 400, description = "Invalid body, scope or namespace", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 403, description = "GLOBAL from a workspace with a parent", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody)))]
pub async fn commit(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Committed>)> {
    let body: CommitBody = parse_body(&body, "invalid request body")?;
    let (Some(content), Some(scope)) = (body.content, body.scope) else {
        return Err(ApiError::BadRequest("invalid request body".to_string()));
    };
    if content.is_empty() || scope.is_empty() {
        return Err(ApiError::BadRequest("invalid request body".to_string()));
    }
    if !SCOPES.contains(&scope.as_str()) {
        let message = "scope must be LOCAL, TEAM, or GLOBAL";
        return Err(ApiError::BadRequest(message.to_string()));
    }
    let namespace = checked_namespace(body.namespace.as_deref().unwrap_or_default())?;
    let global = scope == "GLOBAL";
    if global {
        require_root(&state, workspace_id).await?;
    }
    let mut content = redact_secrets(&content);
    if global {
        content = escape_memory_delimiter(&content);
    }

    let mut tx = state.db.begin().await.context("failed to store memory")?;
    let id = store::memories::insert(&mut *tx, workspace_id, &content, &scope, namespace)
        .await
        .context("failed to store memory")?;
    if global {
        let memory = (id, namespace, content.as_str());
        audit_global(&mut tx, GlobalChange::Written, workspace_id, memory).await?;
    }
    tx.commit().await.context("failed to store memory")?;
    let committed = Committed {
        id,
        scope,
        namespace: namespace.to_string(),
    };
    Ok((StatusCode::CREATED, Json(committed)))
}

/// `general` for an empty namespace; 400 over 50 bytes.
fn checked_namespace(namespace: &str) -> ApiResult<&str> {
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(ApiError::BadRequest(
            "namespace must be <= 50 characters".to_string(),
        ));
    }
    Ok(if namespace.is_empty() {
        DEFAULT_NAMESPACE
    } else {
        namespace
    })
}

/// Only a root workspace may write GLOBAL memories (`memories.go:167-174`).
async fn require_root(state: &AppState, workspace_id: Uuid) -> ApiResult<()> {
    match store::memories::parent_of(&state.db, workspace_id).await? {
        None => Err(ApiError::workspace_not_found()),
        Some(Some(_)) => {
            let refused = ErrorBody {
                code: None,
                error: "only root workspaces can write GLOBAL memories".to_string(),
            };
            Err(ApiError::with_body(StatusCode::FORBIDDEN, &refused))
        }
        Some(None) => Ok(()),
    }
}

/// What happened to a GLOBAL memory, for its audit row.
#[derive(Debug, Clone, Copy)]
enum GlobalChange {
    Written,
    Edited,
}

/// The audit row of a GLOBAL write or edit: what was written, by its hash
/// (`memories.go:205-221, 605-620`). `memory` is its id, namespace and stored content.
async fn audit_global(
    tx: &mut sqlx::PgConnection,
    change: GlobalChange,
    workspace_id: Uuid,
    (memory_id, namespace, content): (Uuid, &str, &str),
) -> ApiResult<()> {
    let (activity_type, verb, reason) = match change {
        GlobalChange::Written => ("memory_write_global", "written", None),
        GlobalChange::Edited => ("memory_edit_global", "edited", Some("edited")),
    };
    let summary = format!("GLOBAL memory {verb}: id={memory_id} namespace={namespace}");
    let mut request = serde_json::json!({
        "memory_id": memory_id,
        "namespace": namespace,
        "content_sha256": format!("{:x}", Sha256::digest(content.as_bytes())),
    });
    if let Some(reason) = reason {
        request["reason"] = serde_json::Value::from(reason);
    }
    let activity = store::activity::NewActivity {
        tool_trace: None,
        workspace_id,
        activity_type,
        source_id: Some(workspace_id),
        target_id: None,
        method: None,
        summary: Some(&summary),
        request_body: Some(&crate::json::raw(&request)),
        response_body: None,
        duration_ms: None,
        status: "ok",
        error_detail: None,
    };
    store::activity::insert(&mut *tx, &activity).await?;
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// `LOCAL`, `TEAM` or `GLOBAL`; otherwise this workspace's own memories.
    #[serde(default)]
    scope: String,
    /// Text to search for (full-text from two bytes on).
    #[serde(default)]
    q: String,
    /// Only this namespace.
    #[serde(default)]
    namespace: String,
    /// At most this many (below 50; 50 otherwise).
    #[serde(default)]
    limit: String,
}

/// A memory as agents read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Memory {
    id: Uuid,
    workspace_id: Option<Uuid>,
    content: String,
    scope: String,
    namespace: String,
    #[serde(serialize_with = "crate::json::go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    created_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<MemoryRow> for Memory {
    fn from(row: MemoryRow) -> Self {
        // GLOBAL memories come from another workspace: labelled so the reader cannot take them
        // for its own instructions (`memories.go:459-461`).
        let content = if row.scope == "GLOBAL" {
            let writer = row
                .workspace_id
                .map(|id| id.to_string())
                .unwrap_or_default();
            format!(
                "[MEMORY id={} scope=GLOBAL from={writer}]: {}",
                row.id, row.content
            )
        } else {
            row.content
        };
        Self {
            id: row.id,
            workspace_id: row.workspace_id,
            content,
            scope: row.scope,
            namespace: row.namespace,
            created_at: row.created_at,
        }
    }
}

/// `GET /workspaces/{id}/memories?scope=&q=&namespace=&limit=`: best match first, then newest.
#[utoipa::path(get, path = "/workspaces/{id}/memories", tag = "memories",
    params(("id" = Uuid, Path), SearchQuery), responses(
    (status = 200, description = "Matching memories", body = Vec<Memory>),
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Query(query): Query<SearchQuery>,
) -> ApiResult<Json<Vec<Memory>>> {
    let search = MemorySearch {
        workspace_id,
        scope: &query.scope,
        namespace: (!query.namespace.is_empty()).then_some(query.namespace.as_str()),
        text: TextQuery::from_query(&query.q),
        limit: parse_limit(&query.limit),
    };
    let rows = store::memories::search(&state.db, &search)
        .await
        .context("search failed")?;
    Ok(Json(rows.into_iter().map(Memory::from).collect()))
}

/// The leading integer of `text` when it is between 1 and 49; 50 otherwise (`memories.go:270-276`).
fn parse_limit(text: &str) -> i64 {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<i64>() {
        Ok(n) if n > 0 && n < DEFAULT_LIMIT => n,
        _ => DEFAULT_LIMIT,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateBody {
    content: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    id: Uuid,
    scope: String,
    namespace: String,
    changed: bool,
}

/// `PATCH /workspaces/{id}/memories/{memoryId}`: new content (redacted) and/or namespace.
#[utoipa::path(patch, path = "/workspaces/{id}/memories/{memoryId}", tag = "memories",
    params(("id" = Uuid, Path), ("memoryId" = Uuid, Path)), request_body = UpdateBody, responses(
    (status = 200, description = "Updated, or nothing changed", body = Updated),
    (status = 400, description = "Invalid body", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Not this workspace's memory", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, memory_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Updated>> {
    let body: UpdateBody = parse_body(&body, "invalid request body")?;
    validate_update(&body)?;
    let not_owned = || ApiError::NotFound(NOT_OWNED.to_string());
    let memory_id = Uuid::parse_str(&memory_id).map_err(|_| not_owned())?;
    let row = store::memories::get_owned(&state.db, memory_id, workspace_id)
        .await?
        .ok_or_else(not_owned)?;
    let global = row.scope == "GLOBAL";
    let content = body.content.as_deref().map(|content| {
        let redacted = redact_secrets(content);
        if global {
            escape_memory_delimiter(&redacted)
        } else {
            redacted
        }
    });
    let content_changed = content.as_ref().is_some_and(|new| *new != row.content);
    let namespace = body.namespace.unwrap_or_else(|| row.namespace.clone());
    let changed = content_changed || namespace != row.namespace;
    if changed {
        let content = content.unwrap_or_else(|| row.content.clone());
        let mut tx = state.db.begin().await.context("failed to update memory")?;
        store::memories::update(&mut *tx, memory_id, &content, &namespace)
            .await
            .context("failed to update memory")?;
        if global && content_changed {
            let memory = (memory_id, namespace.as_str(), content.as_str());
            audit_global(&mut tx, GlobalChange::Edited, workspace_id, memory).await?;
        }
        tx.commit().await.context("failed to update memory")?;
    }
    Ok(Json(Updated {
        id: memory_id,
        scope: row.scope,
        namespace,
        changed,
    }))
}

/// The original's checks and messages, in its order (`memories.go:515-538`).
fn validate_update(body: &UpdateBody) -> ApiResult<()> {
    let bad = |message: &str| Err(ApiError::BadRequest(message.to_string()));
    if body.content.is_none() && body.namespace.is_none() {
        return bad("at least one of content or namespace must be set");
    }
    if body.content.as_deref() == Some("") {
        return bad("content cannot be empty");
    }
    match body.namespace.as_deref() {
        Some("") => bad("namespace cannot be empty"),
        Some(namespace) if namespace.len() > MAX_NAMESPACE_BYTES => {
            bad("namespace must be <= 50 characters")
        }
        _ => Ok(()),
    }
}

/// `DELETE /workspaces/{id}/memories/{memoryId}`.
#[utoipa::path(delete, path = "/workspaces/{id}/memories/{memoryId}", tag = "memories",
    params(("id" = Uuid, Path), ("memoryId" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Deleted", body = StatusBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Not this workspace's memory", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, memory_id)): Path<(String, String)>,
) -> ApiResult<Json<StatusBody>> {
    let not_owned = || ApiError::NotFound(NOT_OWNED.to_string());
    // A malformed id is simply not one of this workspace's memories (the original answered 500).
    let memory_id = Uuid::parse_str(&memory_id).map_err(|_| not_owned())?;
    let deleted = store::memories::delete_owned(&state.db, memory_id, workspace_id)
        .await
        .context("delete failed")?;
    if !deleted {
        return Err(not_owned());
    }
    Ok(Json(StatusBody { status: "deleted" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_takes_the_leading_integer_below_fifty() {
        assert_eq!(parse_limit(""), 50);
        assert_eq!(parse_limit("10abc"), 10);
        assert_eq!(parse_limit("0"), 50);
        assert_eq!(parse_limit("50"), 50);
        assert_eq!(parse_limit("49"), 49);
        assert_eq!(parse_limit("-3"), 50);
    }
}
