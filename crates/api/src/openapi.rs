//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated with utoipa.
//!
//! The schemas below are the wire shapes of the handlers' requests and answers (many handlers
//! answer with `json!` objects that have no Rust type of their own). They are kept truthful by a
//! test comparing the document's operations to `routes::table()` and by `scripts/schemathesis`,
//! which checks every answer of the running server against them.

use std::collections::BTreeMap;

use axum::Json;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// `{"error": "…"}`, plus `code` where the contract has one (and a few documented extras such
/// as `id`/`hint` on 410 or `retry_after` on 429).
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub code: Option<String>,
}

/// `{"status": "…"}` and nothing the client relies on besides.
#[derive(Debug, ToSchema)]
pub struct StatusBody {
    pub status: String,
}

#[derive(Debug, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub checks: BTreeMap<String, String>,
}

#[derive(Debug, ToSchema)]
pub struct BuildInfo {
    pub git_sha: String,
    pub version: String,
}

#[derive(Debug, ToSchema)]
pub struct SubsystemTick {
    pub last_tick_at: String,
    pub seconds_ago: i64,
}

#[derive(Debug, ToSchema)]
pub struct LivenessView {
    pub subsystems: BTreeMap<String, SubsystemTick>,
}

/// The admin projection of a workspace (api-contract §3.2).
#[derive(Debug, ToSchema)]
pub struct WorkspaceFull {
    pub active_tasks: i64,
    pub agent_card: Option<Value>,
    pub budget_limit: Option<i64>,
    pub collapsed: bool,
    pub current_task: String,
    pub id: String,
    pub last_error_rate: f64,
    pub last_sample_error: String,
    pub max_concurrent_tasks: i64,
    pub monthly_spend: i64,
    pub name: String,
    pub parent_id: Option<String>,
    pub role: Option<String>,
    pub runtime: String,
    pub status: String,
    pub tier: i64,
    pub uptime_seconds: i64,
    pub url: String,
    pub workspace_dir: Option<String>,
    pub x: f64,
    pub y: f64,
}

/// The open projection of `GET /workspaces/{id}` (§3.5).
#[derive(Debug, ToSchema)]
pub struct WorkspacePublic {
    pub active_tasks: i64,
    pub agent_card: Option<Value>,
    pub collapsed: bool,
    pub id: String,
    pub last_error_rate: f64,
    pub last_outbound_at: Option<String>,
    pub max_concurrent_tasks: i64,
    pub name: String,
    pub parent_id: Option<String>,
    pub role: Option<String>,
    pub runtime: String,
    pub status: String,
    pub tier: i64,
    pub uptime_seconds: i64,
    pub url: String,
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, ToSchema)]
pub struct CanvasPosition {
    pub x: Option<f64>,
    pub y: Option<f64>,
}

/// `POST /workspaces` (§3.4).
#[derive(Debug, ToSchema)]
pub struct CreateWorkspace {
    pub name: String,
    pub role: Option<String>,
    pub template: Option<String>,
    pub tier: Option<i32>,
    pub model: Option<String>,
    pub runtime: Option<String>,
    pub external: Option<bool>,
    pub url: Option<String>,
    pub delivery_mode: Option<String>,
    pub workspace_dir: Option<String>,
    pub workspace_access: Option<String>,
    pub parent_id: Option<String>,
    pub budget_limit: Option<i64>,
    pub secrets: Option<BTreeMap<String, String>>,
    pub max_concurrent_tasks: Option<i32>,
    pub canvas: Option<CanvasPosition>,
}

/// 201 of a create; external workspaces add `external` and, awaiting their agent, `connection`.
#[derive(Debug, ToSchema)]
pub struct CreatedWorkspace {
    pub id: String,
    pub status: String,
    pub awareness_namespace: Option<String>,
    pub workspace_access: Option<String>,
    pub external: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub connection: Option<Value>,
}

/// `PATCH /workspaces/{id}` (§3.6): any subset of these keys.
#[derive(Debug, ToSchema)]
pub struct PatchWorkspace {
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

#[derive(Debug, ToSchema)]
pub struct Patched {
    pub status: String,
    pub needs_restart: Option<bool>,
}

#[derive(Debug, ToSchema)]
pub struct Deleted {
    pub status: String,
    pub cascade_deleted: i64,
}

#[derive(Debug, ToSchema)]
pub struct ChildRef {
    pub id: String,
    pub name: String,
}

/// 409 of a delete with children and no `?confirm=true`.
#[derive(Debug, ToSchema)]
pub struct ConfirmationRequired {
    pub status: String,
    pub message: String,
    pub children: Vec<ChildRef>,
    pub children_count: i64,
}

/// `/state`: 200 for a live workspace, 404 (same shape, `deleted: true`) for a gone one.
#[derive(Debug, ToSchema)]
pub struct StateView {
    pub workspace_id: String,
    pub status: Option<String>,
    pub paused: Option<bool>,
    pub deleted: bool,
}

#[derive(Debug, ToSchema)]
pub struct ModelView {
    pub model: String,
    pub source: String,
}

#[derive(Debug, ToSchema)]
pub struct ProviderView {
    pub provider: String,
    pub source: String,
}

#[derive(Debug, ToSchema)]
pub struct ModelBody {
    pub model: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct ProviderBody {
    pub provider: Option<String>,
}

/// `saved` (with the value) or `cleared`.
#[derive(Debug, ToSchema)]
pub struct SettingSaved {
    pub status: String,
    pub model: Option<String>,
    pub provider: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct TestToken {
    pub auth_token: String,
    pub workspace_id: String,
}

#[derive(Debug, ToSchema)]
pub struct InstanceBody {
    /// `i-` and 8 or 17 lowercase hex digits, or `null` to detach.
    pub instance_id: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct InstanceSet {
    pub status: String,
    pub instance_id: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct RegisterBody {
    pub id: uuid::Uuid,
    pub url: String,
    #[schema(value_type = Object)]
    pub agent_card: Value,
}

#[derive(Debug, ToSchema)]
pub struct Registered {
    pub status: String,
    /// Only on a workspace's first registration.
    pub auth_token: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct HeartbeatBody {
    pub workspace_id: uuid::Uuid,
    pub error_rate: Option<f64>,
    pub sample_error: Option<String>,
    pub active_tasks: Option<i32>,
    pub uptime_seconds: Option<i32>,
    pub current_task: Option<String>,
    pub monthly_spend: Option<i64>,
    pub runtime_state: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct UpdateCardBody {
    pub workspace_id: uuid::Uuid,
    #[schema(value_type = Object)]
    pub agent_card: Value,
}

#[derive(Debug, ToSchema)]
pub struct Discovered {
    pub id: String,
    pub name: String,
    pub url: String,
}

/// 503 of discovery: the target has no reachable URL.
#[derive(Debug, ToSchema)]
pub struct Unreachable {
    pub error: String,
    pub status: String,
}

#[derive(Debug, ToSchema)]
pub struct PeerView {
    pub active_tasks: i64,
    pub agent_card: Option<Value>,
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub role: Option<String>,
    pub status: String,
    pub tier: i64,
    pub url: String,
}

#[derive(Debug, ToSchema)]
pub struct CheckAccessBody {
    pub caller_id: String,
    pub target_id: String,
}

#[derive(Debug, ToSchema)]
pub struct AccessAnswer {
    pub allowed: bool,
}

#[derive(Debug, ToSchema)]
pub struct EventView {
    pub created_at: String,
    pub event_type: String,
    pub id: String,
    pub payload: Option<Value>,
    pub workspace_id: Option<String>,
}

/// The activity types the server accepts (`handlers::activity::ACTIVITY_TYPES`).
#[derive(Debug, ToSchema)]
#[allow(non_camel_case_types)]
pub enum ActivityType {
    a2a_send,
    a2a_receive,
    task_update,
    agent_log,
    skill_promotion,
    memory_write,
    error,
}

#[derive(Debug, ToSchema)]
pub struct ActivityReport {
    pub activity_type: ActivityType,
    pub method: Option<String>,
    pub summary: Option<String>,
    pub target_id: Option<String>,
    pub source_id: Option<String>,
    pub status: Option<String>,
    pub error_detail: Option<String>,
    pub duration_ms: Option<i32>,
    #[schema(value_type = Option<Object>)]
    pub request_body: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub response_body: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Debug, ToSchema)]
pub struct ActivityView {
    pub activity_type: String,
    pub created_at: String,
    pub duration_ms: Option<i64>,
    pub error_detail: Option<String>,
    pub id: String,
    pub method: Option<String>,
    pub request_body: Option<Value>,
    pub response_body: Option<Value>,
    pub source_id: Option<String>,
    pub status: String,
    pub summary: Option<String>,
    pub target_id: Option<String>,
    pub workspace_id: String,
}

#[derive(Debug, ToSchema)]
pub struct TemplateView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tier: i64,
    pub runtime: String,
    pub model: String,
    #[schema(value_type = Option<Vec<Object>>)]
    pub models: Option<Vec<Value>>,
    pub required_env: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub provider_registry: Option<Vec<Value>>,
    pub skills: Option<Vec<String>>,
    pub skill_count: i64,
    pub provision_timeout_seconds: Option<i64>,
}

#[derive(Debug, ToSchema)]
pub struct ImportTemplate {
    pub name: String,
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, ToSchema)]
pub struct Imported {
    pub status: String,
    pub id: String,
    pub name: String,
}

/// 409 of an import: the folder exists.
#[derive(Debug, ToSchema)]
pub struct TemplateExists {
    pub error: String,
    pub id: String,
}

#[derive(Debug, ToSchema)]
pub struct FileEntryView {
    pub path: String,
    pub size: i64,
    pub dir: bool,
}

#[derive(Debug, ToSchema)]
pub struct FileContent {
    pub path: String,
    pub content: String,
    pub size: i64,
}

#[derive(Debug, ToSchema)]
pub struct WriteFileBody {
    pub content: Option<String>,
}

#[derive(Debug, ToSchema)]
pub struct FileDone {
    pub status: String,
    pub path: String,
}

#[derive(Debug, ToSchema)]
pub struct ReplaceFilesBody {
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, ToSchema)]
pub struct Replaced {
    pub status: String,
    pub workspace: String,
    pub files: i64,
    pub source: String,
}

/// The operations: one documented function per route of the table (bodies never run).
#[allow(dead_code)]
mod operations {
    use super::*;

    #[utoipa::path(get, path = "/health", tag = "ops",
        responses((status = 200, description = "Alive", body = Health)))]
    pub fn health() {}

    #[utoipa::path(get, path = "/ready", tag = "ops", responses(
        (status = 200, description = "Database answers and schema migrated", body = Readiness),
        (status = 503, description = "A check failed", body = Readiness)))]
    pub fn ready() {}

    #[utoipa::path(get, path = "/buildinfo", tag = "ops",
        responses((status = 200, description = "Build", body = BuildInfo)))]
    pub fn buildinfo() {}

    #[utoipa::path(get, path = "/metrics", tag = "ops", responses(
        (status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
    pub fn metrics() {}

    #[utoipa::path(get, path = "/openapi.json", tag = "ops",
        responses((status = 200, description = "This document", body = Object)))]
    pub fn openapi() {}

    #[utoipa::path(get, path = "/admin/liveness", tag = "admin", responses(
        (status = 200, description = "Last tick per background loop", body = LivenessView),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn liveness() {}

    #[utoipa::path(get, path = "/workspaces", tag = "workspaces", responses(
        (status = 200, description = "Every live workspace", body = Vec<WorkspaceFull>),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "Query failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn list_workspaces() {}

    #[utoipa::path(post, path = "/workspaces", tag = "workspaces", request_body = CreateWorkspace,
        responses(
        (status = 201, description = "Created", body = CreatedWorkspace),
        (status = 400, description = "Invalid payload", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "Duplicate sibling name", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 500, description = "Create failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn create_workspace() {}

    #[utoipa::path(get, path = "/workspaces/{id}", tag = "workspaces",
        params(("id" = uuid::Uuid, Path, description = "Workspace id"),
               ("include_removed" = Option<String>, Query, description = "`true` shows removed")),
        responses(
        (status = 200, description = "The open projection", body = WorkspacePublic),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 410, description = "Removed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn get_workspace() {}

    #[utoipa::path(patch, path = "/workspaces/{id}", tag = "workspaces",
        params(("id" = uuid::Uuid, Path)), request_body = PatchWorkspace, responses(
        (status = 200, description = "Updated", body = Patched),
        (status = 400, description = "Invalid key or value", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 409, description = "Duplicate sibling name", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn patch_workspace() {}

    #[utoipa::path(delete, path = "/workspaces/{id}", tag = "workspaces",
        params(("id" = uuid::Uuid, Path),
               ("confirm" = Option<String>, Query, description = "`true` cascades"),
               ("purge" = Option<String>, Query, description = "`true` hard-deletes")),
        responses(
        (status = 200, description = "Removed or purged", body = Deleted),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 409, description = "Has children", body = ConfirmationRequired),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn delete_workspace() {}

    #[utoipa::path(get, path = "/workspaces/{id}/state", tag = "workspaces",
        params(("id" = uuid::Uuid, Path)), responses(
        (status = 200, description = "Live", body = StateView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not this workspace's token", body = ErrorBody),
        (status = 404, description = "Gone", body = StateView),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn workspace_state() {}

    #[utoipa::path(get, path = "/workspaces/{id}/model", tag = "settings",
        params(("id" = uuid::Uuid, Path)), responses(
        (status = 200, description = "The model", body = ModelView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 500, description = "Decryption failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn get_model() {}

    #[utoipa::path(put, path = "/workspaces/{id}/model", tag = "settings",
        params(("id" = uuid::Uuid, Path)), request_body = ModelBody, responses(
        (status = 200, description = "Saved or cleared", body = SettingSaved),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn put_model() {}

    #[utoipa::path(get, path = "/workspaces/{id}/provider", tag = "settings",
        params(("id" = uuid::Uuid, Path)), responses(
        (status = 200, description = "The provider", body = ProviderView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 500, description = "Decryption failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn get_provider() {}

    #[utoipa::path(put, path = "/workspaces/{id}/provider", tag = "settings",
        params(("id" = uuid::Uuid, Path)), request_body = ProviderBody, responses(
        (status = 200, description = "Saved or cleared", body = SettingSaved),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn put_provider() {}

    #[utoipa::path(get, path = "/admin/workspaces/{id}/test-token", tag = "admin",
        params(("id" = uuid::Uuid, Path)), responses(
        (status = 200, description = "A fresh workspace token", body = TestToken),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "ADMIN_TOKEN required", body = ErrorBody),
        (status = 404, description = "Disabled, or unknown workspace", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn test_token() {}

    #[utoipa::path(put, path = "/admin/workspaces/{id}/instance", tag = "admin",
        params(("id" = uuid::Uuid, Path)), request_body = InstanceBody, responses(
        (status = 200, description = "Attached or detached", body = InstanceSet),
        (status = 400, description = "Invalid id or instance id", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn set_instance() {}

    #[utoipa::path(post, path = "/registry/register", tag = "registry",
        request_body = RegisterBody, responses(
        (status = 200, description = "Registered", body = Registered),
        (status = 400, description = "Invalid body or URL", body = ErrorBody),
        (status = 401, description = "Not the workspace's token", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 413, description = "Card or body too large", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn register() {}

    #[utoipa::path(post, path = "/registry/heartbeat", tag = "registry",
        request_body = HeartbeatBody, responses(
        (status = 200, description = "Recorded", body = StatusBody),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Not the workspace's token", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn heartbeat() {}

    #[utoipa::path(post, path = "/registry/update-card", tag = "registry",
        request_body = UpdateCardBody, responses(
        (status = 200, description = "Updated", body = StatusBody),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Not the workspace's token", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 413, description = "Card or body too large", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn update_card() {}

    #[utoipa::path(get, path = "/registry/discover/{id}", tag = "registry",
        params(("id" = uuid::Uuid, Path),
               ("X-Workspace-ID" = uuid::Uuid, Header, description = "The calling workspace")),
        responses(
        (status = 200, description = "Where to reach it", body = Discovered),
        (status = 400, description = "Invalid ids", body = ErrorBody),
        (status = 401, description = "Not the caller's token", body = ErrorBody),
        (status = 403, description = "Hierarchy forbids it", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 503, description = "No URL yet", body = Unreachable)))]
    pub fn discover() {}

    #[utoipa::path(get, path = "/registry/{id}/peers", tag = "registry",
        params(("id" = uuid::Uuid, Path)), responses(
        (status = 200, description = "Siblings, children, parent", body = Vec<PeerView>),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not the workspace's token", body = ErrorBody),
        (status = 404, description = "Unknown", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn peers() {}

    #[utoipa::path(post, path = "/registry/check-access", tag = "registry",
        request_body = CheckAccessBody, responses(
        (status = 200, description = "The answer", body = AccessAnswer),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn check_access() {}

    #[utoipa::path(get, path = "/events", tag = "events", responses(
        (status = 200, description = "The newest 100 events", body = Vec<EventView>),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn events() {}

    #[utoipa::path(get, path = "/events/{workspaceId}", tag = "events",
        params(("workspaceId" = uuid::Uuid, Path)), responses(
        (status = 200, description = "The workspace's newest 100 events", body = Vec<EventView>),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn workspace_events() {}

    #[utoipa::path(get, path = "/ws", tag = "events", responses(
        (status = 101, description = "The live event stream (WebSocket)"),
        (status = 400, description = "Not a WebSocket upgrade, or invalid X-Workspace-ID"),
        (status = 401, description = "Not the named workspace's token", body = ErrorBody),
        (status = 405, description = "Not a GET upgrade"),
        (status = 426, description = "Upgrade required")))]
    pub fn socket() {}

    #[utoipa::path(post, path = "/workspaces/{id}/activity", tag = "activity",
        params(("id" = uuid::Uuid, Path)), request_body = ActivityReport, responses(
        (status = 200, description = "Logged", body = StatusBody),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 403, description = "source_id is another workspace", body = ErrorBody),
        (status = 404, description = "Unknown workspace", body = ErrorBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn report_activity() {}

    #[utoipa::path(get, path = "/workspaces/{id}/activity", tag = "activity",
        params(("id" = uuid::Uuid, Path),
               ("type" = Option<String>, Query), ("source" = Option<String>, Query),
               ("limit" = Option<String>, Query)),
        responses(
        (status = 200, description = "Newest first", body = Vec<ActivityView>),
        (status = 400, description = "Invalid id or filter", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn list_activity() {}

    #[utoipa::path(get, path = "/templates", tag = "templates", responses(
        (status = 200, description = "Templates under CONFIGS_DIR", body = Vec<TemplateView>),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn templates() {}

    #[utoipa::path(post, path = "/templates/import", tag = "templates",
        request_body = ImportTemplate, responses(
        (status = 201, description = "Imported", body = Imported),
        (status = 400, description = "Invalid body or path", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "Exists", body = TemplateExists),
        (status = 413, description = "Too large", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
    pub fn import_template() {}

    #[utoipa::path(get, path = "/workspaces/{id}/files", tag = "files",
        params(("id" = uuid::Uuid, Path), ("root" = Option<String>, Query),
               ("path" = Option<String>, Query), ("depth" = Option<String>, Query)),
        responses(
        (status = 200, description = "Entries", body = Vec<FileEntryView>),
        (status = 400, description = "Invalid root, path or depth", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown workspace", body = ErrorBody),
        (status = 409, description = "Instance unavailable", body = ErrorBody),
        (status = 502, description = "Remote step failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody),
        (status = 504, description = "Host did not answer in time", body = ErrorBody)))]
    pub fn list_files() {}

    #[utoipa::path(put, path = "/workspaces/{id}/files", tag = "files",
        params(("id" = uuid::Uuid, Path)), request_body = ReplaceFilesBody, responses(
        (status = 200, description = "Written", body = Replaced),
        (status = 400, description = "Invalid body or path", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown workspace", body = ErrorBody),
        (status = 409, description = "Instance unavailable", body = ErrorBody),
        (status = 413, description = "Too large", body = ErrorBody),
        (status = 502, description = "Remote step failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody),
        (status = 504, description = "Host did not answer in time", body = ErrorBody)))]
    pub fn replace_files() {}

    #[utoipa::path(get, path = "/workspaces/{id}/files/{path}", tag = "files",
        params(("id" = uuid::Uuid, Path), ("path" = String, Path, description = "Relative path"),
               ("root" = Option<String>, Query)),
        responses(
        (status = 200, description = "The file", body = FileContent),
        (status = 400, description = "Invalid root or path", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown workspace or file", body = ErrorBody),
        (status = 409, description = "Instance unavailable", body = ErrorBody),
        (status = 413, description = "File too large", body = ErrorBody),
        (status = 502, description = "Remote step failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody),
        (status = 504, description = "Host did not answer in time", body = ErrorBody)))]
    pub fn read_file() {}

    #[utoipa::path(put, path = "/workspaces/{id}/files/{path}", tag = "files",
        params(("id" = uuid::Uuid, Path), ("path" = String, Path), ("root" = Option<String>, Query)),
        request_body = WriteFileBody, responses(
        (status = 200, description = "Saved", body = FileDone),
        (status = 400, description = "Invalid root, path or body", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown workspace", body = ErrorBody),
        (status = 409, description = "Instance unavailable", body = ErrorBody),
        (status = 413, description = "Too large", body = ErrorBody),
        (status = 502, description = "Remote step failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody),
        (status = 504, description = "Host did not answer in time", body = ErrorBody)))]
    pub fn write_file() {}

    #[utoipa::path(delete, path = "/workspaces/{id}/files/{path}", tag = "files",
        params(("id" = uuid::Uuid, Path), ("path" = String, Path), ("root" = Option<String>, Query)),
        responses(
        (status = 200, description = "Deleted (or was absent)", body = FileDone),
        (status = 400, description = "Invalid root or path", body = ErrorBody),
        (status = 401, description = "Not this workspace", body = ErrorBody),
        (status = 404, description = "Unknown workspace", body = ErrorBody),
        (status = 409, description = "Instance unavailable", body = ErrorBody),
        (status = 502, description = "Remote step failed", body = ErrorBody),
        (status = 503, description = "Datastore unavailable", body = ErrorBody),
        (status = 504, description = "Host did not answer in time", body = ErrorBody)))]
    pub fn delete_file() {}
}

/// Declares the bearer scheme every guarded route takes.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "workspace-server", description = "Workspace metadata, files and agents' registry"),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        operations::health, operations::ready, operations::buildinfo, operations::metrics,
        operations::openapi, operations::liveness, operations::list_workspaces,
        operations::create_workspace, operations::get_workspace, operations::patch_workspace,
        operations::delete_workspace, operations::workspace_state, operations::get_model,
        operations::put_model, operations::get_provider, operations::put_provider,
        operations::test_token, operations::set_instance, operations::register,
        operations::heartbeat, operations::update_card, operations::discover, operations::peers,
        operations::check_access, operations::events, operations::workspace_events,
        operations::socket, operations::report_activity, operations::list_activity,
        operations::templates, operations::import_template, operations::list_files,
        operations::replace_files, operations::read_file, operations::write_file,
        operations::delete_file,
        crate::panels::viewport::get_viewport, crate::panels::viewport::put_viewport,
        crate::panels::approvals::create, crate::panels::approvals::list,
        crate::panels::approvals::decide, crate::panels::approvals::pending,
        crate::panels::budget::get_budget, crate::panels::budget::patch_budget,
        crate::panels::budget::metrics, crate::panels::audit::list, crate::panels::traces::list,
    )
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        serde_json::to_value(doc).unwrap_or_default()
    })
}

/// `GET /openapi.json`
pub async fn serve() -> Json<Value> {
    Json(document().clone())
}

/// The table's path in OpenAPI's template syntax: `{*path}` is `{path}`.
pub fn openapi_path(route_path: &str) -> String {
    route_path.replace("{*", "{")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_table_is_documented_and_nothing_else() {
        let doc = document();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|key| !matches!(key.as_str(), "parameters" | "summary" | "description"))
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let mut routed: Vec<(String, String)> = crate::routes::table()
            .into_iter()
            .map(|spec| (spec.method.to_string(), openapi_path(spec.path)))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }

    #[test]
    fn the_documented_activity_types_are_the_accepted_ones() {
        let documented = &document()["components"]["schemas"]["ActivityType"]["enum"];
        assert_eq!(
            documented,
            &serde_json::json!(crate::handlers::activity::ACTIVITY_TYPES)
        );
    }

    #[test]
    fn every_operation_documents_its_error_answers() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                if path.contains("{id}") {
                    assert!(responses.contains_key("400"), "{method} {path}: no 400");
                }
            }
        }
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    }
}
