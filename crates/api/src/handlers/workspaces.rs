//! Workspace metadata (api-contract §3): list, create, get, patch, delete and `/state`.

use std::collections::HashMap;
use std::path::{Component, Path as FsPath, PathBuf};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::json::{format_go_time, go_float, go_time_opt, parse_body};
use crate::workspace_cache::Lookup;
use crate::{ApiConfig, ApiError, AppState};
use store::StoreError;
use store::workspaces::{NewWorkspace, WorkspacePatch, WorkspaceRow};

const DEFAULT_TIER: i32 = 3; // self-hosted; the original uses 4 only with a SaaS provisioner
const DEFAULT_RUNTIME: &str = "langgraph";
const DUPLICATE_NAME: &str = "a workspace with this name already exists under the same parent";
const REMOVED_HINT: &str = "Regenerate workspace + token from the canvas → Tokens tab";
/// `workspace_dir` may not point into the system's own directories.
const FORBIDDEN_DIRS: [&str; 10] = [
    "/etc", "/var", "/proc", "/sys", "/dev", "/boot", "/sbin", "/bin", "/lib", "/usr",
];

/// The admin projection of a row (§3.2). Fields are in alphabetical order, as Go prints a map.
#[derive(Serialize)]
struct FullView<'a> {
    active_tasks: i32,
    agent_card: &'a Option<Value>,
    budget_limit: Option<i64>,
    collapsed: bool,
    current_task: &'a str,
    id: Uuid,
    #[serde(serialize_with = "go_float")]
    last_error_rate: f64,
    last_sample_error: &'a str,
    max_concurrent_tasks: i32,
    monthly_spend: i64,
    name: &'a str,
    parent_id: Option<Uuid>,
    role: Option<&'a str>,
    runtime: &'a str,
    status: &'a str,
    tier: i32,
    uptime_seconds: i32,
    url: &'a str,
    workspace_dir: Option<&'a str>,
    #[serde(serialize_with = "go_float")]
    x: f64,
    #[serde(serialize_with = "go_float")]
    y: f64,
}

impl<'a> From<&'a WorkspaceRow> for FullView<'a> {
    fn from(row: &'a WorkspaceRow) -> Self {
        FullView {
            active_tasks: row.active_tasks,
            agent_card: &row.agent_card,
            budget_limit: row.budget_limit,
            collapsed: row.collapsed,
            current_task: &row.current_task,
            id: row.id,
            last_error_rate: row.last_error_rate,
            last_sample_error: &row.last_sample_error,
            max_concurrent_tasks: row.max_concurrent_tasks,
            monthly_spend: row.monthly_spend,
            name: &row.name,
            parent_id: row.parent_id,
            role: role(row),
            runtime: &row.runtime,
            status: &row.status,
            tier: row.tier,
            uptime_seconds: row.uptime_seconds,
            url: &row.url,
            workspace_dir: row.workspace_dir.as_deref(),
            x: row.x,
            y: row.y,
        }
    }
}

/// The open projection of `GET /workspaces/{id}` (§3.5): no budget, spend, current task, sample
/// error or workspace dir; plus `last_outbound_at`.
#[derive(Serialize)]
struct PublicView<'a> {
    active_tasks: i32,
    agent_card: &'a Option<Value>,
    collapsed: bool,
    id: Uuid,
    #[serde(serialize_with = "go_float")]
    last_error_rate: f64,
    #[serde(serialize_with = "go_time_opt")]
    last_outbound_at: Option<DateTime<Utc>>,
    max_concurrent_tasks: i32,
    name: &'a str,
    parent_id: Option<Uuid>,
    role: Option<&'a str>,
    runtime: &'a str,
    status: &'a str,
    tier: i32,
    uptime_seconds: i32,
    url: &'a str,
    #[serde(serialize_with = "go_float")]
    x: f64,
    #[serde(serialize_with = "go_float")]
    y: f64,
}

impl<'a> From<&'a WorkspaceRow> for PublicView<'a> {
    fn from(row: &'a WorkspaceRow) -> Self {
        PublicView {
            active_tasks: row.active_tasks,
            agent_card: &row.agent_card,
            collapsed: row.collapsed,
            id: row.id,
            last_error_rate: row.last_error_rate,
            last_outbound_at: row.last_outbound_at,
            max_concurrent_tasks: row.max_concurrent_tasks,
            name: &row.name,
            parent_id: row.parent_id,
            role: role(row),
            runtime: &row.runtime,
            status: &row.status,
            tier: row.tier,
            uptime_seconds: row.uptime_seconds,
            url: &row.url,
            x: row.x,
            y: row.y,
        }
    }
}

/// `role` is `null` when empty or NULL.
fn role(row: &WorkspaceRow) -> Option<&str> {
    row.role.as_deref().filter(|r| !r.is_empty())
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("invalid workspace ID".to_string()))
}

fn workspace_not_found() -> ApiError {
    ApiError::NotFound("workspace not found".to_string())
}

/// Opens a transaction on the workspace `id`, which must exist (404 otherwise); database errors
/// answer with `failed`.
async fn begin_on_existing(
    state: &AppState,
    id: Uuid,
    failed: &str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(|e| store_error(failed)(e.into()))?;
    if store::workspaces::status(&mut *tx, id)
        .await
        .map_err(store_error(failed))?
        .is_none()
    {
        return Err(workspace_not_found());
    }
    Ok(tx)
}

/// Maps the store's typed conflicts to their statuses; anything else is a 500 with `context`.
fn store_error(context: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |error| match error {
        StoreError::DuplicateWorkspaceName => ApiError::Conflict(DUPLICATE_NAME.to_string()),
        StoreError::ParentNotFound => {
            ApiError::BadRequest("parent workspace not found".to_string())
        }
        StoreError::NotFound => workspace_not_found(),
        other => ApiError::internal(context)(other),
    }
}

/// `GET /workspaces` (admin): every live workspace, oldest first.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rows = store::workspaces::list_live(&state.db)
        .await
        .map_err(store_error("query failed"))?;
    let views: Vec<FullView<'_>> = rows.iter().map(FullView::from).collect();
    Ok(Json(views).into_response())
}

#[derive(Deserialize)]
pub struct GetQuery {
    include_removed: Option<String>,
}

/// `GET /workspaces/{id}` (open). Live workspaces' bodies are cached (`workspace_cache`).
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<GetQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let cache = state.events.workspace_cache();
    let ticket = match cache.lookup(id) {
        Lookup::Hit(body) => return Ok(json_body(body)),
        Lookup::Miss(ticket) => ticket,
    };
    let row = store::workspaces::get(&state.db, id)
        .await
        .map_err(store_error("query failed"))?
        .ok_or_else(workspace_not_found)?;
    if row.status == "removed" && query.include_removed.as_deref() != Some("true") {
        let removed_at = row.updated_at.as_ref().map(format_go_time);
        let body = json!({
            "error": "workspace removed", "id": id, "hint": REMOVED_HINT, "removed_at": removed_at,
        });
        return Err(ApiError::WithBody {
            status: StatusCode::GONE,
            body,
        });
    }
    let body = serde_json::to_vec(&PublicView::from(&row))
        .map_err(ApiError::internal("failed to encode the workspace"))?;
    let body = Bytes::from(body);
    // Only live rows: their body is the same with or without `include_removed`.
    if row.status != "removed" {
        cache.fill(ticket, id, body.clone());
    }
    Ok(json_body(body))
}

/// A 200 with an already encoded JSON body.
fn json_body(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreatePayload {
    name: String,
    role: Option<String>,
    template: Option<String>,
    tier: Option<i32>,
    model: Option<String>,
    runtime: Option<String>,
    external: Option<bool>,
    url: Option<String>,
    delivery_mode: Option<String>,
    workspace_dir: Option<String>,
    workspace_access: Option<String>,
    parent_id: Option<String>,
    budget_limit: Option<i64>,
    secrets: Option<HashMap<String, String>>,
    max_concurrent_tasks: Option<i32>,
    canvas: Option<Canvas>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Canvas {
    x: f64,
    y: f64,
}

/// A validated create request.
struct CreatePlan {
    payload: CreatePayload,
    runtime: String,
    model: Option<String>,
    parent_id: Option<Uuid>,
    workspace_access: String,
    delivery_mode: String,
    external: bool,
    /// The template folder to copy into the new workspace's local files.
    template_dir: Option<PathBuf>,
}

/// `POST /workspaces` (admin).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let plan = plan_create(&state.config, &body)?;
    let payload = &plan.payload;
    let id = Uuid::new_v4();
    let url = payload.url.as_deref().filter(|u| !u.is_empty());
    let status = match (plan.external, url) {
        (false, _) => "provisioning",
        (true, Some(_)) => "online",
        (true, None) => "awaiting_agent",
    };
    let new = NewWorkspace {
        id,
        name: &payload.name,
        role: payload.role.as_deref(),
        tier: payload.tier.filter(|t| *t != 0).unwrap_or(DEFAULT_TIER),
        runtime: &plan.runtime,
        status,
        url,
        parent_id: plan.parent_id,
        workspace_dir: payload.workspace_dir.as_deref().filter(|d| !d.is_empty()),
        workspace_access: &plan.workspace_access,
        budget_limit: payload.budget_limit,
        max_concurrent_tasks: payload.max_concurrent_tasks.unwrap_or(0).max(1),
        delivery_mode: &plan.delivery_mode,
    };

    let failed = "failed to create workspace";
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(|e| store_error(failed)(e.into()))?;
    store::workspaces::insert(&mut *tx, &new)
        .await
        .map_err(store_error(failed))?;
    for (key, value) in payload.secrets.iter().flatten() {
        store::secrets::upsert(&mut *tx, &state.crypto, id, key, value)
            .await
            .map_err(|error| {
                let step = if matches!(error, StoreError::Crypto(_)) {
                    "encrypt"
                } else {
                    "save"
                };
                ApiError::Internal {
                    context: format!("failed to {step} secret: {key}"),
                    source: error.into(),
                }
            })?;
    }
    if let Some(model) = plan.model.as_deref() {
        let crypto = &state.crypto;
        store::secrets::upsert(&mut *tx, crypto, id, store::secrets::MODEL_KEY, model)
            .await
            .map_err(store_error(failed))?;
        if let Some(provider) = super::model::provider_for_model(model) {
            store::secrets::upsert(&mut *tx, crypto, id, store::secrets::PROVIDER_KEY, provider)
                .await
                .map_err(store_error(failed))?;
        }
    }
    let canvas = payload.canvas.as_ref();
    let (x, y) = canvas.map_or((0.0, 0.0), |c| (c.x, c.y));
    store::layouts::upsert_position(&mut *tx, id, x, y)
        .await
        .map_err(store_error(failed))?;
    let event = json!({ "name": payload.name, "tier": new.tier, "runtime": plan.runtime });
    store::events::record(&mut *tx, "WORKSPACE_PROVISIONING", Some(id), &event)
        .await
        .map_err(store_error(failed))?;
    let token = if status == "awaiting_agent" {
        Some(
            store::tokens::mint_workspace_token(&mut *tx, id)
                .await
                .map_err(store_error(failed))?,
        )
    } else {
        None
    };
    tx.commit()
        .await
        .map_err(|e| store_error(failed)(e.into()))?;

    if plan.external {
        let mut body = json!({ "id": id, "external": true, "status": status });
        if let Some(token) = token {
            body["connection"] =
                crate::external::connection_for_create(&state.config, &headers, &uri, id, &token);
        }
        return Ok((StatusCode::CREATED, Json(body)).into_response());
    }
    if let Some(template_dir) = &plan.template_dir {
        // Best effort, like the original's provisioning: the row exists either way.
        if let Err(error) = crate::files::seed_from_template(&state.config, id, template_dir).await
        {
            tracing::warn!(workspace_id = %id, error = ?error, "seeding workspace files from template failed");
        }
    }
    let body = json!({
        "id": id,
        "status": "provisioning",
        "awareness_namespace": new.awareness_namespace(),
        "workspace_access": plan.workspace_access,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Validates a create body in the original's order (§3.4) and fills in the defaults.
fn plan_create(config: &ApiConfig, body: &[u8]) -> Result<CreatePlan, ApiError> {
    let payload: CreatePayload = parse_body(body, "invalid workspace payload")?;
    if payload.name.is_empty() {
        return Err(ApiError::BadRequest(
            "invalid workspace payload".to_string(),
        ));
    }
    let fields = [
        ("name", Some(payload.name.as_str())),
        ("role", payload.role.as_deref()),
        ("model", payload.model.as_deref()),
        ("runtime", payload.runtime.as_deref()),
    ];
    if fields
        .iter()
        .any(|(field, value)| value.is_some_and(|v| check_field(field, v).is_err()))
    {
        return Err(ApiError::BadRequest("invalid workspace fields".to_string()));
    }
    let mut runtime = payload.runtime.clone().filter(|r| !r.is_empty());
    let mut model = payload.model.clone().filter(|m| !m.is_empty());
    let mut template_dir = None;
    if let Some(template) = payload.template.as_deref() {
        // Checked even when runtime and model are given (the original then answered 200 with
        // an empty body and left the row stuck).
        let dir = resolve_inside(&config.configs_dir, template)
            .ok_or_else(|| ApiError::BadRequest("invalid template".to_string()))?;
        let defaults = read_template_defaults(&dir);
        runtime = runtime.or(defaults.runtime);
        model = model.or(defaults.model);
        template_dir = dir.is_dir().then_some(dir);
    }
    let external = payload.external == Some(true) || runtime.as_deref() == Some("external");
    let runtime = if external {
        "external".to_string()
    } else {
        runtime.unwrap_or_else(|| DEFAULT_RUNTIME.to_string())
    };
    if template_dir.is_none() && !external {
        let fallback = config.configs_dir.join(format!("{runtime}-default"));
        template_dir = fallback.is_dir().then_some(fallback);
    }
    if let Some(dir) = payload.workspace_dir.as_deref().filter(|d| !d.is_empty()) {
        check_workspace_dir(dir)?;
    }
    let has_dir = payload
        .workspace_dir
        .as_deref()
        .is_some_and(|d| !d.is_empty());
    let workspace_access = match payload.workspace_access.as_deref().unwrap_or("") {
        "" | "none" => "none",
        "read_only" | "read_write" if has_dir => payload.workspace_access.as_deref().unwrap_or(""),
        _ => return Err(ApiError::BadRequest("invalid workspace access".to_string())),
    }
    .to_string();
    let delivery_mode = match payload.delivery_mode.as_deref().unwrap_or("") {
        "" | "push" => "push",
        "poll" => "poll",
        _ => {
            return Err(ApiError::BadRequest(
                "delivery_mode must be 'push' or 'poll'".to_string(),
            ));
        }
    }
    .to_string();
    let parent_id = match payload.parent_id.as_deref().filter(|p| !p.is_empty()) {
        Some(raw) => Some(
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::BadRequest("parent workspace not found".to_string()))?,
        ),
        None => None,
    };
    Ok(CreatePlan {
        payload,
        runtime,
        model,
        parent_id,
        workspace_access,
        delivery_mode,
        external,
        template_dir,
    })
}

/// The original's `validateWorkspaceFields` for one string field, with its message.
fn check_field(field: &str, value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r']) {
        return Err(format!("{field} must not contain newline characters"));
    }
    if matches!(field, "name" | "role")
        && value.contains(['{', '}', '[', ']', '|', '>', '*', '&', '!'])
    {
        return Err(format!("{field} contains invalid characters"));
    }
    let limit = match field {
        "name" => 255,
        "role" => 1000,
        _ => 100,
    };
    if value.len() > limit {
        return Err(format!("{field} must be at most {limit} characters"));
    }
    Ok(())
}

fn check_workspace_dir(dir: &str) -> Result<(), ApiError> {
    let path = FsPath::new(dir);
    let escapes = path.components().any(|c| matches!(c, Component::ParentDir));
    let system = FORBIDDEN_DIRS
        .iter()
        .any(|forbidden| path.starts_with(forbidden));
    if !path.is_absolute() || escapes || dir.contains("..") || system {
        return Err(ApiError::BadRequest(
            "invalid workspace directory".to_string(),
        ));
    }
    Ok(())
}

/// `root/relative` when `relative` is a plain relative path that stays inside `root` (also after
/// following symlinks, when it exists).
fn resolve_inside(root: &FsPath, relative: &str) -> Option<PathBuf> {
    let rel = FsPath::new(relative);
    let plain = !relative.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain {
        return None;
    }
    let joined = root.join(rel);
    if let (Ok(real), Ok(real_root)) = (joined.canonicalize(), root.canonicalize())
        && !real.starts_with(&real_root)
    {
        return None;
    }
    Some(joined)
}

/// The defaults a template's `config.yaml` declares.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TemplateDefaults {
    runtime: Option<String>,
    model: Option<String>,
    runtime_config: Option<RuntimeConfig>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RuntimeConfig {
    model: Option<String>,
}

struct Defaults {
    runtime: Option<String>,
    model: Option<String>,
}

fn read_template_defaults(dir: &FsPath) -> Defaults {
    let path = dir.join("config.yaml");
    let parsed = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            serde_yaml::from_str::<TemplateDefaults>(&text).map_err(|e| e.to_string())
        });
    let config = parsed.unwrap_or_else(|error| {
        tracing::warn!(path = %path.display(), %error, "template config unreadable; no defaults taken");
        TemplateDefaults::default()
    });
    let nested = config.runtime_config.and_then(|rc| rc.model);
    Defaults {
        runtime: config.runtime.filter(|r| !r.is_empty()),
        model: nested.or(config.model).filter(|m| !m.is_empty()),
    }
}

/// `PATCH /workspaces/{id}` (workspace auth): every key in one transaction.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let body: Map<String, Value> = parse_body(&body, "invalid request body")?;
    let patch = read_patch(&body)?;
    let failed = "failed to update workspace";

    let mut tx = begin_on_existing(&state, id, failed).await?;
    if let Some(Some(parent)) = patch.columns.parent_id {
        let descendants = store::workspaces::live_descendants(&mut *tx, id)
            .await
            .map_err(store_error(failed))?;
        if parent == id || descendants.contains(&parent) {
            return Err(ApiError::BadRequest(
                "parent_id would create a cycle".to_string(),
            ));
        }
    }
    store::workspaces::update(&mut *tx, id, &patch.columns)
        .await
        .map_err(store_error(failed))?;
    if let Some(collapsed) = patch.collapsed {
        store::layouts::upsert_collapsed(&mut *tx, id, collapsed)
            .await
            .map_err(store_error(failed))?;
    }
    if let Some((x, y)) = patch.position {
        store::layouts::upsert_position(&mut *tx, id, x, y)
            .await
            .map_err(store_error(failed))?;
    }
    tx.commit()
        .await
        .map_err(|e| store_error(failed)(e.into()))?;

    let mut answer = json!({ "status": "updated" });
    if patch.columns.workspace_dir.is_some() {
        answer["needs_restart"] = Value::Bool(true);
    }
    Ok(Json(answer).into_response())
}

struct Patch {
    columns: WorkspacePatch,
    collapsed: Option<bool>,
    position: Option<(f64, f64)>,
}

/// Reads the PATCH keys of §3.6; a key of the wrong type is a 400 rather than silently ignored.
fn read_patch(body: &Map<String, Value>) -> Result<Patch, ApiError> {
    let wrong = |key: &str, kind: &str| ApiError::BadRequest(format!("{key} must be {kind}"));
    let string = |key: &str| -> Result<Option<String>, ApiError> {
        match body.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                check_field(key, s).map_err(ApiError::BadRequest)?;
                Ok(Some(s.clone()))
            }
            Some(_) => Err(wrong(key, "a string")),
        }
    };
    let nullable_string = |key: &str| -> Result<Option<Option<String>>, ApiError> {
        match body.get(key) {
            Some(Value::Null) => Ok(Some(None)),
            _ => string(key).map(|s| s.map(Some)),
        }
    };
    let number = |key: &str| -> Result<Option<f64>, ApiError> {
        match body.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| wrong(key, "a number")),
        }
    };

    let name = string("name")?;
    if name.as_deref() == Some("") {
        return Err(ApiError::BadRequest("name must not be empty".to_string()));
    }
    let role = nullable_string("role")?;
    let runtime = string("runtime")?.filter(|r| !r.is_empty());
    let tier = match body.get("tier") {
        None => None,
        Some(value) => Some(
            value
                .as_i64()
                .and_then(|t| i32::try_from(t).ok())
                .ok_or_else(|| wrong("tier", "an integer"))?,
        ),
    };
    let parent_id = match body.get("parent_id") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(raw)) if raw.is_empty() => Some(None),
        Some(Value::String(raw)) => {
            Some(Some(Uuid::parse_str(raw).map_err(|_| {
                ApiError::BadRequest("parent workspace not found".to_string())
            })?))
        }
        Some(_) => return Err(wrong("parent_id", "a string or null")),
    };
    let workspace_dir = match body.get("workspace_dir") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(dir)) if dir.is_empty() => Some(None),
        Some(Value::String(dir)) => {
            check_workspace_dir(dir)?;
            Some(Some(dir.clone()))
        }
        Some(_) => return Err(wrong("workspace_dir", "a string or null")),
    };
    let collapsed = match body.get("collapsed") {
        None => None,
        Some(value) => Some(
            value
                .as_bool()
                .ok_or_else(|| wrong("collapsed", "a boolean"))?,
        ),
    };
    let position = match (number("x")?, number("y")?) {
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

#[derive(Deserialize)]
pub struct DeleteQuery {
    confirm: Option<String>,
    purge: Option<String>,
}

/// `DELETE /workspaces/{id}?confirm=&purge=` (admin): soft-deletes the workspace and all its live
/// descendants in one transaction (or hard-deletes them with `purge=true`).
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let confirmed = query.confirm.as_deref() == Some("true");
    let purge = query.purge.as_deref() == Some("true");
    let failed = if purge {
        "purge failed"
    } else {
        "failed to delete workspace"
    };

    let mut tx = begin_on_existing(&state, id, failed).await?;
    let children = store::workspaces::live_children(&mut *tx, id)
        .await
        .map_err(store_error("failed to check children"))?;
    if !children.is_empty() && !confirmed {
        let listed: Vec<Value> = children
            .iter()
            .map(|c| json!({ "id": c.id, "name": c.name }))
            .collect();
        let body = json!({
            "status": "confirmation_required",
            "message": "This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete.",
            "children": listed,
            "children_count": children.len(),
        });
        return Err(ApiError::WithBody {
            status: StatusCode::CONFLICT,
            body,
        });
    }
    let descendants = store::workspaces::live_descendants(&mut *tx, id)
        .await
        .map_err(store_error(failed))?;
    let mut all = descendants.clone();
    all.push(id);
    store::workspaces::mark_removed(&mut *tx, &all)
        .await
        .map_err(store_error(failed))?;
    store::layouts::delete_for(&mut *tx, &all)
        .await
        .map_err(store_error(failed))?;
    store::tokens::revoke_for_workspaces(&mut *tx, &all)
        .await
        .map_err(store_error(failed))?;
    for descendant in &descendants {
        store::events::record(&mut *tx, "WORKSPACE_REMOVED", Some(*descendant), &json!({}))
            .await
            .map_err(store_error(failed))?;
    }
    let cascade = json!({ "cascade_deleted": descendants.len() });
    store::events::record(&mut *tx, "WORKSPACE_REMOVED", Some(id), &cascade)
        .await
        .map_err(store_error(failed))?;
    if purge {
        store::workspaces::purge(&mut tx, &all)
            .await
            .map_err(store_error(failed))?;
    }
    tx.commit()
        .await
        .map_err(|e| store_error(failed)(e.into()))?;

    let status = if purge { "purged" } else { "removed" };
    Ok(Json(json!({ "status": status, "cascade_deleted": descendants.len() })).into_response())
}

/// `GET /workspaces/{id}/state` (the workspace's own token, checked by its guard).
pub async fn state(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let status = store::workspaces::status(&state.db, id)
        .await
        .map_err(store_error("query failed"))?;
    let response = match status.as_deref() {
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "workspace_id": id, "deleted": true })),
        ),
        Some("removed") => (
            StatusCode::NOT_FOUND,
            Json(json!({ "workspace_id": id, "status": "removed", "deleted": true })),
        ),
        Some(status) => (
            StatusCode::OK,
            Json(json!({
                "workspace_id": id, "status": status, "paused": status == "paused", "deleted": false,
            })),
        ),
    };
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_like_the_original() {
        assert!(check_field("name", "ok name").is_ok());
        assert_eq!(
            check_field("name", "a\nb").unwrap_err(),
            "name must not contain newline characters"
        );
        assert_eq!(
            check_field("role", "a|b").unwrap_err(),
            "role contains invalid characters"
        );
        assert!(check_field("model", "a|b").is_ok());
        assert_eq!(
            check_field("name", &"n".repeat(256)).unwrap_err(),
            "name must be at most 255 characters"
        );
        assert!(check_field("runtime", &"r".repeat(101)).is_err());
    }

    #[test]
    fn workspace_dir_rules() {
        assert!(check_workspace_dir("/home/me/project").is_ok());
        assert!(check_workspace_dir("relative").is_err());
        assert!(check_workspace_dir("/home/../etc").is_err());
        assert!(check_workspace_dir("/etc/x").is_err());
        assert!(check_workspace_dir("/usr").is_err());
        assert!(check_workspace_dir("/usrlocal").is_ok());
    }

    #[test]
    fn templates_resolve_inside_the_root_only() {
        let root = FsPath::new("/nonexistent-root");
        assert!(resolve_inside(root, "langgraph").is_some());
        assert!(resolve_inside(root, "a/b").is_some());
        assert!(resolve_inside(root, "").is_none());
        assert!(resolve_inside(root, "../x").is_none());
        assert!(resolve_inside(root, "/etc").is_none());
        assert!(resolve_inside(root, "a/../../x").is_none());
    }
}
