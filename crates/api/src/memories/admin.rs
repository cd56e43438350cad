//! `GET /admin/memories/export`, `POST /admin/memories/import`: moving memories between
//! deployments by workspace name (the original's `handlers/admin_memories.go` at 624ef4d0, its
//! SQL mode).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::redact::redact_secrets;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::{ApiError, AppState};

/// One exported (or imported) memory.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedMemory {
    id: Uuid,
    content: String,
    scope: String,
    namespace: String,
    #[serde(serialize_with = "crate::json::go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    created_at: Option<DateTime<Utc>>,
    workspace_name: String,
}

/// `GET /admin/memories/export`: every memory with its workspace's name, oldest first, redacted.
#[utoipa::path(get, path = "/admin/memories/export", tag = "memories", responses(
    (status = 200, description = "Every memory", body = Vec<ExportedMemory>),
    (status = 401, description = "Not an operator", body = ErrorBody)))]
pub async fn export(State(state): State<AppState>) -> ApiResult<Json<Vec<ExportedMemory>>> {
    let rows = store::memories::export_all(&state.db)
        .await
        .context("export query failed")?;
    let memories = rows
        .into_iter()
        .map(|row| ExportedMemory {
            id: row.id,
            content: redact_secrets(&row.content),
            scope: row.scope,
            namespace: row.namespace,
            created_at: row.created_at,
            workspace_name: row.workspace_name,
        })
        .collect();
    Ok(Json(memories))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportEntry {
    #[serde(default)]
    content: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    workspace_name: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportSummary {
    imported: usize,
    skipped: usize,
    errors: usize,
    total: usize,
}

/// `POST /admin/memories/import`: a JSON array of memories; an entry whose workspace name is
/// unknown, or whose content the workspace already has in that scope, is skipped, so a
/// re-import changes nothing.
#[utoipa::path(post, path = "/admin/memories/import", tag = "memories",
    request_body = Vec<ImportEntry>, responses(
    (status = 200, description = "Counts", body = ImportSummary),
    (status = 400, description = "Not a JSON array", body = ErrorBody),
    (status = 401, description = "Not an operator", body = ErrorBody)))]
pub async fn import(State(state): State<AppState>, body: Bytes) -> ApiResult<Json<ImportSummary>> {
    let entries: Option<Vec<ImportEntry>> = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("invalid JSON: {error}")))?;
    let entries = entries.unwrap_or_default();
    let mut summary = ImportSummary {
        total: entries.len(),
        ..ImportSummary::default()
    };
    for entry in &entries {
        match import_entry(&state, entry).await {
            Ok(true) => summary.imported += 1,
            Ok(false) => summary.skipped += 1,
            Err(error) => {
                tracing::warn!(error = %error, "memory import entry failed");
                summary.errors += 1;
            }
        }
    }
    Ok(Json(summary))
}

/// Whether the entry was imported; `Err` for an entry that cannot be (bad scope, namespace or
/// time, or a database error).
async fn import_entry(state: &AppState, entry: &ImportEntry) -> Result<bool, ImportError> {
    if !["LOCAL", "TEAM", "GLOBAL"].contains(&entry.scope.as_str()) {
        return Err(ImportError::Invalid("scope"));
    }
    if entry.namespace.len() > 50 {
        return Err(ImportError::Invalid("namespace"));
    }
    let created_at = match entry.created_at.as_str() {
        "" => None,
        text => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| ImportError::Invalid("created_at"))?
                .with_timezone(&Utc),
        ),
    };
    let Some(workspace_id) =
        store::memories::workspace_by_name(&state.db, &entry.workspace_name).await?
    else {
        return Ok(false);
    };
    let content = redact_secrets(&entry.content);
    let namespace = match entry.namespace.as_str() {
        "" => "general",
        namespace => namespace,
    };
    let memory = store::memories::ImportedMemory {
        workspace_id,
        content: &content,
        scope: &entry.scope,
        namespace,
        created_at,
    };
    Ok(store::memories::import_one(&state.db, &memory).await?)
}

#[derive(Debug, thiserror::Error)]
enum ImportError {
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}
