//! The canvas's Memory tab: `GET /workspaces/{id}/v2/namespaces`, `GET /workspaces/{id}/v2/memories`,
//! `DELETE /workspaces/{id}/v2/memories/{memoryId}` (the original's `handlers/memories_v2.go` at
//! 624ef4d0).
//!
//! Served from `agent_memories`, so what an agent commits through the v1 routes shows here under
//! its namespace. With `MEMORY_PLUGIN_URL` set, the memories come from that plugin instead, as in
//! the original, so an existing deployment keeps its data.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::namespaces::{Namespace, Namespaces};
use super::plugin::{Plugin, PluginError, PluginMemory};
use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 100;
const DEFAULT_PLUGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
const KINDS: [&str; 3] = ["fact", "summary", "checkpoint"];
/// The canvas shows its "plugin not configured" banner when an error names `MEMORY_PLUGIN_URL`.
const PLUGIN_UNREACHABLE: &str = "memory plugin is unreachable (check MEMORY_PLUGIN_URL)";

#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceList {
    readable: Vec<Namespace>,
    writable: Vec<Namespace>,
}

/// The workspace's namespaces; 404 when it does not exist.
async fn resolve(state: &AppState, workspace_id: Uuid) -> ApiResult<Namespaces> {
    let chain = store::memories::ancestry(&state.db, workspace_id)
        .await
        .context("failed to resolve namespaces")?;
    Namespaces::from_chain(chain).ok_or_else(ApiError::workspace_not_found)
}

/// `GET /workspaces/{id}/v2/namespaces`: what the workspace may read and write.
#[utoipa::path(get, path = "/workspaces/{id}/v2/namespaces", tag = "memories",
    params(("id" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Readable and writable namespaces", body = NamespaceList),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody)))]
pub async fn namespaces(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Json<NamespaceList>> {
    let namespaces = resolve(&state, workspace_id).await?;
    Ok(Json(NamespaceList {
        readable: namespaces.readable(),
        writable: namespaces.writable(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// One readable namespace; all of them when absent.
    namespace: Option<String>,
    /// Text to search for.
    #[serde(default)]
    q: String,
    /// `fact`, `summary` or `checkpoint`.
    kind: Option<String>,
    /// 50 by default, at most 100.
    #[serde(default)]
    limit: String,
}

/// A memory as the tab shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryView {
    id: String,
    namespace: String,
    content: String,
    kind: String,
    source: String,
    pin: bool,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::go_time_opt"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    /// The full-text rank, on a text search.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_workspace_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryList {
    memories: Vec<MemoryView>,
}

/// `GET /workspaces/{id}/v2/memories?namespace=&q=&kind=&limit=`.
#[utoipa::path(get, path = "/workspaces/{id}/v2/memories", tag = "memories",
    params(("id" = Uuid, Path), ListQuery), responses(
    (status = 200, description = "Memories of the readable namespaces asked for", body = MemoryList),
    (status = 400, description = "Invalid kind", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 502, description = "The memory plugin failed", body = ErrorBody),
    (status = 503, description = "The memory plugin is unreachable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<MemoryList>> {
    let kind = query.kind.as_deref().filter(|kind| !kind.is_empty());
    if kind.is_some_and(|kind| !KINDS.contains(&kind)) {
        return Err(ApiError::BadRequest("invalid kind".to_string()));
    }
    let limit = parse_limit(&query.limit);
    let namespaces = resolve(&state, workspace_id).await?;
    let requested = query.namespace.as_deref();
    let memories = match plugin(&state) {
        Some(plugin) => {
            let names = namespaces.readable_names(requested);
            if names.is_empty() {
                Vec::new()
            } else {
                let found = plugin.search(&names, &query.q, kind, limit).await;
                found
                    .map_err(plugin_error("memory plugin search failed"))?
                    .into_iter()
                    .map(MemoryView::from)
                    .collect()
            }
        }
        // Agents' memories are all facts.
        None if kind.is_some_and(|kind| kind != "fact") => Vec::new(),
        None => {
            let set = namespaces.readable_set(requested);
            let text = store::memories::TextQuery::from_query(&query.q);
            store::memories::list_namespaced(&state.db, set, text, limit)
                .await
                .context("failed to list memories")?
                .into_iter()
                .map(MemoryView::from)
                .collect()
        }
    };
    Ok(Json(MemoryList { memories }))
}

/// 50 by default or when not positive, at most 100 (`memories_v2.go:444-456`).
fn parse_limit(text: &str) -> i64 {
    match text.parse::<i64>() {
        Ok(n) if n > 0 => n.min(MAX_LIMIT),
        _ => DEFAULT_LIMIT,
    }
}

/// `DELETE /workspaces/{id}/v2/memories/{memoryId}`: a memory of a namespace this workspace may
/// write (its own, its team's, and its org's when it is the root).
#[utoipa::path(delete, path = "/workspaces/{id}/v2/memories/{memoryId}", tag = "memories",
    params(("id" = Uuid, Path), ("memoryId" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Deleted", body = StatusBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "No such memory in a writable namespace", body = ErrorBody),
    (status = 502, description = "The memory plugin failed", body = ErrorBody),
    (status = 503, description = "The memory plugin is unreachable", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, memory_id)): Path<(String, String)>,
) -> ApiResult<Json<StatusBody>> {
    let not_found = || ApiError::NotFound("memory not found".to_string());
    let memory_id = Uuid::parse_str(&memory_id).map_err(|_| not_found())?;
    let namespaces = resolve(&state, workspace_id).await?;
    let deleted = match plugin(&state) {
        Some(plugin) => match plugin.forget(memory_id, &namespaces.own_name()).await {
            Ok(()) => true,
            Err(PluginError::NotFound) => false,
            Err(error) => return Err(plugin_error("memory plugin delete failed")(error)),
        },
        None => store::memories::delete_namespaced(&state.db, memory_id, namespaces.writable_set())
            .await
            .context("failed to delete memory")?,
    };
    if !deleted {
        return Err(not_found());
    }
    Ok(Json(StatusBody { status: "deleted" }))
}

fn plugin(state: &AppState) -> Option<Plugin<'_>> {
    state
        .config
        .memory_plugin_url
        .as_deref()
        .map(|base_url| Plugin {
            base_url,
            timeout: match state.config.memory_plugin_timeout {
                zero if zero.is_zero() => DEFAULT_PLUGIN_TIMEOUT,
                timeout => timeout,
            },
        })
}

/// 503 naming `MEMORY_PLUGIN_URL` when the plugin does not answer; 502 `message` otherwise.
fn plugin_error(message: &'static str) -> impl FnOnce(PluginError) -> ApiError {
    move |error| match error {
        PluginError::Unreachable(source) => ApiError::Unavailable {
            message: PLUGIN_UNREACHABLE.to_string(),
            code: "memory_plugin_unavailable",
            source: Some(source.into()),
        },
        other => ApiError::Remote {
            status: StatusCode::BAD_GATEWAY,
            message: message.to_string(),
            source: Some(other.into()),
        },
    }
}

impl From<store::memories::NamespacedMemory> for MemoryView {
    fn from(row: store::memories::NamespacedMemory) -> Self {
        Self {
            id: row.id.to_string(),
            namespace: row.namespace,
            content: row.content,
            kind: "fact".to_string(),
            source: "agent".to_string(),
            pin: false,
            expires_at: None,
            created_at: row.created_at,
            score: row.score.map(f64::from),
            source_workspace_id: None,
        }
    }
}

impl From<PluginMemory> for MemoryView {
    fn from(memory: PluginMemory) -> Self {
        let source_workspace_id = memory
            .propagation
            .as_ref()
            .and_then(|propagation| propagation.get("source_workspace_id"))
            .and_then(|id| id.as_str())
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        Self {
            id: memory.id,
            namespace: memory.namespace,
            content: memory.content,
            kind: memory.kind,
            source: memory.source,
            pin: memory.pin,
            expires_at: memory.expires_at,
            created_at: memory.created_at,
            score: memory.score,
            source_workspace_id,
        }
    }
}
