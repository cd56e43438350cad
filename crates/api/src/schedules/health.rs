//! `GET /workspaces/{id}/schedules/health` and `GET /admin/schedules/health`: whether schedules
//! run (the original's `handlers/schedules.go:365-422` and `handlers/admin_schedules_health.go`
//! at 624ef4d0).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::cron::next_run;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;

/// A schedule's run state, without its prompt or expression.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleHealth {
    id: Uuid,
    name: String,
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
}

/// `GET /workspaces/{id}/schedules/health`: authenticated like every workspace route (the
/// original trusted a forged `X-Workspace-ID`).
#[utoipa::path(get, path = "/workspaces/{id}/schedules/health", tag = "schedules",
    params(("id" = Uuid, Path)), responses(
    (status = 400, description = "Invalid workspace ID", body = ErrorBody),
    (status = 200, description = "Run state of each schedule", body = Vec<ScheduleHealth>),
    (status = 401, description = "Not this workspace", body = ErrorBody)))]
pub async fn workspace(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Json<Vec<ScheduleHealth>>> {
    let rows = store::schedules::list(&state.db, workspace_id)
        .await
        .context("failed to query schedules")?;
    let health = rows
        .into_iter()
        .map(|row| ScheduleHealth {
            id: row.id,
            name: row.name,
            enabled: row.enabled,
            last_run_at: row.last_run_at,
            next_run_at: row.next_run_at,
            run_count: row.run_count,
            last_status: row.last_status,
            last_error: row.last_error,
        })
        .collect();
    Ok(Json(health))
}

/// One schedule of the platform and whether it runs on time.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformHealth {
    workspace_id: Uuid,
    workspace_name: String,
    schedule_id: Uuid,
    schedule_name: String,
    cron_expr: String,
    #[serde(serialize_with = "crate::json::go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_run_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::json::go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expected_next_run: Option<DateTime<Utc>>,
    /// `never_run`, `stale` or `ok`.
    status: &'static str,
    stale_threshold_seconds: i64,
}

/// `GET /admin/schedules/health`: every schedule of a live workspace, by workspace then name.
#[utoipa::path(get, path = "/admin/schedules/health", tag = "schedules", responses(
    (status = 200, description = "Every schedule's health", body = Vec<PlatformHealth>),
    (status = 401, description = "Not an operator", body = ErrorBody)))]
pub async fn platform(State(state): State<AppState>) -> ApiResult<Json<Vec<PlatformHealth>>> {
    let rows = store::schedules::platform(&state.db)
        .await
        .context("failed to query schedules")?;
    let now = Utc::now();
    let health = rows
        .into_iter()
        .map(|row| {
            let threshold = stale_threshold(&row.cron_expr, &row.timezone, now);
            let status = match row.last_run_at {
                None => "never_run",
                Some(last) if threshold > 0 && (now - last).num_seconds() > threshold => "stale",
                Some(_) => "ok",
            };
            PlatformHealth {
                workspace_id: row.workspace_id,
                workspace_name: row.workspace_name,
                schedule_id: row.schedule_id,
                schedule_name: row.schedule_name,
                cron_expr: row.cron_expr,
                last_run_at: row.last_run_at,
                expected_next_run: row.next_run_at,
                status,
                stale_threshold_seconds: threshold,
            }
        })
        .collect();
    Ok(Json(health))
}

/// Twice the gap between the next two runs from now; 0 when the expression yields none
/// (`admin_schedules_health.go:45-55`).
fn stale_threshold(cron_expr: &str, timezone: &str, now: DateTime<Utc>) -> i64 {
    let Ok(first) = next_run(cron_expr, timezone, now) else {
        return 0;
    };
    let Ok(second) = next_run(cron_expr, timezone, first) else {
        return 0;
    };
    2 * (second - first).num_seconds()
}
