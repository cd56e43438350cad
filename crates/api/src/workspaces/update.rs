//! `PATCH /workspaces/{id}`: every key at once (one statement, or one transaction when the patch
//! reaches beyond the row).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};
use store::workspaces::WorkspacePatch;
use utoipa::ToSchema;
use uuid::Uuid;

use super::begin_on_existing;
use super::validate::{check_field, check_workspace_dir};
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// `PATCH /workspaces/{id}`'s body: any subset of these keys. Read key by key (a key of the
/// wrong type is a 400 naming it, `null` clears), so this type only documents it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // only documents the body
pub struct PatchBody {
    pub name: Option<String>,
    pub role: Option<String>,
    pub tier: Option<i32>,
    pub parent_id: Option<String>,
    pub runtime: Option<String>,
    pub workspace_dir: Option<String>,
    pub collapsed: Option<bool>,
    pub x: Option<f64>,
    pub y: Option<f64>,
}

/// `{"status":"updated"}`, plus `needs_restart` when `workspace_dir` changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_restart: Option<bool>,
    pub status: &'static str,
}

/// `PATCH /workspaces/{id}` (workspace auth): every key at once, or none.
#[utoipa::path(patch, path = "/workspaces/{id}", tag = "workspaces",
    params(("id" = Uuid, Path)), request_body = PatchBody, responses(
    (status = 200, description = "Updated", body = Updated),
    (status = 400, description = "Invalid key or value", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 409, description = "Duplicate sibling name", body = ErrorBody),
    (status = 413, description = "Body too large"),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> Result<Json<Updated>, ApiError> {
    let body: Map<String, Value> = parse_body(&body, "invalid request body")?;
    let patch = read_patch(&body)?;
    let failed = "failed to update workspace";
    let updated = Updated {
        needs_restart: patch.columns.workspace_dir.is_some().then_some(true),
        status: "updated",
    };

    // One statement is atomic on its own: a patch of the row's own columns (no new parent to
    // check for a cycle, no layout) is one round trip, its 404 from the rows it touched.
    if patch.is_row_only() {
        store::workspaces::update(&state.db, id, &patch.columns)
            .await
            .context(failed)?;
        return Ok(Json(updated));
    }
    let mut tx = begin_on_existing(&state, id, failed).await?;
    if let Some(Some(parent)) = patch.columns.parent_id {
        let descendants = store::workspaces::live_descendants(&mut *tx, id)
            .await
            .context(failed)?;
        if parent == id || descendants.contains(&parent) {
            return Err(ApiError::BadRequest(
                "parent_id would create a cycle".to_string(),
            ));
        }
    }
    store::workspaces::update(&mut *tx, id, &patch.columns)
        .await
        .context(failed)?;
    if let Some(collapsed) = patch.collapsed {
        store::layouts::upsert_collapsed(&mut *tx, id, collapsed)
            .await
            .context(failed)?;
    }
    if let Some((x, y)) = patch.position {
        store::layouts::upsert_position(&mut *tx, id, x, y)
            .await
            .context(failed)?;
    }
    tx.commit().await.context(failed)?;
    Ok(Json(updated))
}

struct Patch {
    columns: WorkspacePatch,
    collapsed: Option<bool>,
    position: Option<(f64, f64)>,
}

impl Patch {
    /// Whether the patch changes the workspace's row and nothing else.
    fn is_row_only(&self) -> bool {
        !self.columns.is_empty()
            && !matches!(self.columns.parent_id, Some(Some(_)))
            && self.collapsed.is_none()
            && self.position.is_none()
    }
}

/// Reads the PATCH keys; a key of the wrong type is a 400 rather than silently ignored. Keys are
/// checked in the original's order, so the first bad one names the error.
fn read_patch(body: &Map<String, Value>) -> Result<Patch, ApiError> {
    let keys = Keys(body);
    let name = keys.string("name")?;
    if name.as_deref() == Some("") {
        return Err(ApiError::BadRequest("name must not be empty".to_string()));
    }
    let role = keys.nullable_string("role")?;
    let runtime = keys.string("runtime")?.filter(|r| !r.is_empty());
    let tier = keys.tier()?;
    let parent_id = keys.parent_id()?;
    let workspace_dir = keys.workspace_dir()?;
    let collapsed = keys.boolean("collapsed")?;
    let position = match (keys.number("x")?, keys.number("y")?) {
        (Some(x), Some(y)) => Some((x, y)),
        _ => None, // like the original: the layout moves only when both are sent
    };
    Ok(Patch {
        columns: WorkspacePatch {
            name,
            role,
            tier,
            parent_id,
            runtime,
            workspace_dir,
        },
        collapsed,
        position,
    })
}

/// The keys of a PATCH body, each read with its type's rule: `None` when absent,
/// `Some(None)` when cleared.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn wrong(key: &str, kind: &str) -> ApiError {
        ApiError::BadRequest(format!("{key} must be {kind}"))
    }

    fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                check_field(key, s).map_err(ApiError::BadRequest)?;
                Ok(Some(s.clone()))
            }
            Some(_) => Err(Self::wrong(key, "a string")),
        }
    }

    fn nullable_string(&self, key: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.0.get(key) {
            Some(Value::Null) => Ok(Some(None)),
            _ => self.string(key).map(|s| s.map(Some)),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a number")),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a boolean")),
        }
    }

    fn tier(&self) -> Result<Option<i32>, ApiError> {
        match self.0.get("tier") {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .and_then(|t| i32::try_from(t).ok())
                .map(Some)
                .ok_or_else(|| Self::wrong("tier", "an integer")),
        }
    }

    fn parent_id(&self) -> Result<Option<Option<Uuid>>, ApiError> {
        match self.0.get("parent_id") {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(raw)) if raw.is_empty() => Ok(Some(None)),
            Some(Value::String(raw)) => Uuid::parse_str(raw)
                .map(|id| Some(Some(id)))
                .map_err(|_| ApiError::BadRequest("parent workspace not found".to_string())),
            Some(_) => Err(Self::wrong("parent_id", "a string or null")),
        }
    }

    fn workspace_dir(&self) -> Result<Option<Option<String>>, ApiError> {
        match self.0.get("workspace_dir") {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(dir)) if dir.is_empty() => Ok(Some(None)),
            Some(Value::String(dir)) => {
                check_workspace_dir(dir)?;
                Ok(Some(Some(dir.clone())))
            }
            Some(_) => Err(Self::wrong("workspace_dir", "a string or null")),
        }
    }
}
