//! `GET|POST /workspaces/{id}/schedules`, `PATCH|DELETE /workspaces/{id}/schedules/{scheduleId}`,
//! `POST …/run`, `GET …/history` (the original's `handlers/schedules.go` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::schedules::{NewSchedule, SchedulePatch, ScheduleRow};
use utoipa::ToSchema;
use uuid::Uuid;

use super::cron::{CronError, next_run, parse_timezone};
use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

const NOT_FOUND: &str = "schedule not found";

/// A schedule as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Schedule {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    cron_expr: String,
    timezone: String,
    prompt: String,
    enabled: bool,
    #[serde(serialize_with = "crate::json::go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_run_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::json::go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    next_run_at: Option<DateTime<Utc>>,
    run_count: i32,
    last_status: String,
    last_error: String,
    source: String,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
}

impl From<ScheduleRow> for Schedule {
    fn from(row: ScheduleRow) -> Self {
        Self {
            id: row.id,
            workspace_id: row.workspace_id,
            name: row.name,
            cron_expr: row.cron_expr,
            timezone: row.timezone,
            prompt: row.prompt,
            enabled: row.enabled,
            last_run_at: row.last_run_at,
            next_run_at: row.next_run_at,
            run_count: row.run_count,
            last_status: row.last_status,
            last_error: row.last_error,
            source: row.source,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// `GET /workspaces/{id}/schedules`: oldest first.
#[utoipa::path(get, path = "/workspaces/{id}/schedules", tag = "schedules",
    params(("id" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "The workspace's schedules", body = Vec<Schedule>),
    (status = 401, description = "Not this workspace", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Json<Vec<Schedule>>> {
    let rows = store::schedules::list(&state.db, workspace_id)
        .await
        .context("failed to query schedules")?;
    Ok(Json(rows.into_iter().map(Schedule::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBody {
    #[serde(default)]
    name: String,
    /// Five fields: minute, hour, day of month, month, day of week.
    #[serde(default)]
    cron_expr: String,
    /// An IANA zone; UTC when empty.
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    prompt: String,
    enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    id: Uuid,
    status: &'static str,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    next_run_at: DateTime<Utc>,
}

/// The original's 400s: `invalid timezone: <tz>`, and `invalid request body` for an expression
/// that does not parse or never fires.
fn cron_error(error: CronError) -> ApiError {
    match error {
        CronError::Timezone(zone) => ApiError::BadRequest(format!("invalid timezone: {zone}")),
        CronError::Expression | CronError::Never => {
            ApiError::BadRequest("invalid request body".to_string())
        }
    }
}

/// The next run of a validated timing, or the original's 400.
fn checked_next_run(cron_expr: &str, timezone: &str) -> ApiResult<DateTime<Utc>> {
    // The zone's message comes first, as in the original.
    parse_timezone(timezone).map_err(cron_error)?;
    next_run(cron_expr, timezone, Utc::now()).map_err(cron_error)
}

/// `POST /workspaces/{id}/schedules`.
#[utoipa::path(post, path = "/workspaces/{id}/schedules", tag = "schedules",
    params(("id" = Uuid, Path)), request_body = CreateBody, responses(
    (status = 201, description = "Created, with its first run", body = Created),
    (status = 400, description = "Missing fields, invalid zone or expression", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 409, description = "A schedule of this name exists", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let required = "cron_expr and prompt are required";
    let body: CreateBody = parse_body(&body, required)?;
    if body.cron_expr.is_empty() || body.prompt.is_empty() {
        return Err(ApiError::BadRequest(required.to_string()));
    }
    let prompt = body.prompt.replace('\r', "");
    let timezone = if body.timezone.is_empty() {
        "UTC"
    } else {
        &body.timezone
    };
    let next_run_at = checked_next_run(&body.cron_expr, timezone)?;
    let schedule = NewSchedule {
        workspace_id,
        name: &body.name,
        cron_expr: &body.cron_expr,
        timezone,
        prompt: &prompt,
        enabled: body.enabled.unwrap_or(true),
        next_run_at,
    };
    let id = store::schedules::create(&state.db, &schedule)
        .await
        .map_err(duplicate_name)?;
    let created = Created {
        id,
        status: "created",
        next_run_at,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// A second schedule of the same name is a 409 (the original answered 500).
fn duplicate_name(error: store::StoreError) -> ApiError {
    if error.is_unique_violation() {
        return ApiError::Conflict("a schedule with this name already exists".to_string());
    }
    ApiError::from_store(error, "failed to save schedule")
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateBody {
    name: Option<String>,
    cron_expr: Option<String>,
    timezone: Option<String>,
    prompt: Option<String>,
    enabled: Option<bool>,
}

/// `PATCH /workspaces/{id}/schedules/{scheduleId}`: any subset of the fields; a new expression
/// or zone, or a re-enabled schedule, gets its next run from now.
#[utoipa::path(patch, path = "/workspaces/{id}/schedules/{scheduleId}", tag = "schedules",
    params(("id" = Uuid, Path), ("scheduleId" = Uuid, Path)), request_body = UpdateBody, responses(
    (status = 200, description = "Updated", body = StatusBody),
    (status = 400, description = "Invalid JSON, zone or expression", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "No such schedule", body = ErrorBody),
    (status = 409, description = "A schedule of this name exists", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, schedule_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<StatusBody>> {
    let body: UpdateBody = parse_body(&body, "invalid JSON")?;
    let schedule_id = parse_schedule_id(&schedule_id)?;
    let prompt = body.prompt.map(|prompt| prompt.replace('\r', ""));
    let retimed = body.cron_expr.is_some() || body.timezone.is_some();
    // Re-enabling recomputes the next run too: the original kept the stale one and fired at once.
    let next_run_at = if retimed || body.enabled == Some(true) {
        let current = store::schedules::timing(&state.db, schedule_id, workspace_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(NOT_FOUND.to_string()))?;
        let cron_expr = body.cron_expr.as_deref().unwrap_or(&current.cron_expr);
        let timezone = body.timezone.as_deref().unwrap_or(&current.timezone);
        Some(checked_next_run(cron_expr, timezone)?)
    } else {
        None
    };
    let patch = SchedulePatch {
        name: body.name.as_deref(),
        cron_expr: body.cron_expr.as_deref(),
        timezone: body.timezone.as_deref(),
        prompt: prompt.as_deref(),
        enabled: body.enabled,
        next_run_at,
    };
    let updated = store::schedules::update(&state.db, schedule_id, workspace_id, &patch)
        .await
        .map_err(duplicate_name)?;
    if !updated {
        return Err(ApiError::NotFound(NOT_FOUND.to_string()));
    }
    Ok(Json(StatusBody { status: "updated" }))
}

/// A malformed id names no schedule (the original answered 500 on some routes).
fn parse_schedule_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound(NOT_FOUND.to_string()))
}

/// `DELETE /workspaces/{id}/schedules/{scheduleId}`: its history stays.
#[utoipa::path(delete, path = "/workspaces/{id}/schedules/{scheduleId}", tag = "schedules",
    params(("id" = Uuid, Path), ("scheduleId" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Deleted", body = StatusBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "No such schedule", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, schedule_id)): Path<(String, String)>,
) -> ApiResult<Json<StatusBody>> {
    let schedule_id = parse_schedule_id(&schedule_id)?;
    let deleted = store::schedules::delete(&state.db, schedule_id, workspace_id)
        .await
        .context("failed to delete schedule")?;
    if !deleted {
        return Err(ApiError::NotFound(NOT_FOUND.to_string()));
    }
    Ok(Json(StatusBody { status: "deleted" }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunNow {
    status: &'static str,
    workspace_id: Uuid,
    prompt: String,
}

/// `POST /workspaces/{id}/schedules/{scheduleId}/run`: answers the prompt for the caller to send
/// to the agent itself (the canvas posts it to `/a2a`), as the original did.
#[utoipa::path(post, path = "/workspaces/{id}/schedules/{scheduleId}/run", tag = "schedules",
    params(("id" = Uuid, Path), ("scheduleId" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "The prompt to send", body = RunNow),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "No such schedule", body = ErrorBody)))]
pub async fn run(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, schedule_id)): Path<(String, String)>,
) -> ApiResult<Json<RunNow>> {
    let schedule_id = parse_schedule_id(&schedule_id)?;
    let prompt = store::schedules::prompt(&state.db, schedule_id, workspace_id)
        .await
        .context("failed to read schedule")?
        .ok_or_else(|| ApiError::NotFound(NOT_FOUND.to_string()))?;
    Ok(Json(RunNow {
        status: "fired",
        workspace_id,
        prompt,
    }))
}

/// One past run.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    timestamp: DateTime<Utc>,
    duration_ms: Option<i32>,
    status: Option<String>,
    error_detail: String,
    #[schema(value_type = Object)]
    request: Value,
}

/// `GET /workspaces/{id}/schedules/{scheduleId}/history`: the last 20 runs, newest first.
#[utoipa::path(get, path = "/workspaces/{id}/schedules/{scheduleId}/history", tag = "schedules",
    params(("id" = Uuid, Path), ("scheduleId" = String, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Runs, newest first", body = Vec<HistoryEntry>),
    (status = 401, description = "Not this workspace", body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path((_workspace, schedule_id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    let rows = store::schedules::history(&state.db, workspace_id, &schedule_id)
        .await
        .context("failed to query history")?;
    let entries = rows
        .into_iter()
        .map(|row| HistoryEntry {
            timestamp: row.created_at,
            duration_ms: row.duration_ms,
            status: row.status,
            error_detail: row.error_detail,
            request: row.request_body,
        })
        .collect();
    Ok(Json(entries))
}
