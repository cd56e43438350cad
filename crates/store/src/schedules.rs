//! `workspace_schedules`: cron prompts sent to a workspace's agent, and the firing loop's claim.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// One schedule as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub cron_expr: String,
    pub timezone: String,
    pub prompt: String,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub run_count: i32,
    pub last_status: String,
    pub last_error: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A workspace's schedules, oldest first.
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Vec<ScheduleRow>, StoreError> {
    let rows = sqlx::query_as!(
        ScheduleRow,
        r#"SELECT id, workspace_id, name, cron_expr, timezone, prompt, enabled, last_run_at,
                  next_run_at, run_count, COALESCE(last_status, '') AS "last_status!",
                  COALESCE(last_error, '') AS "last_error!", source, created_at, updated_at
           FROM workspace_schedules WHERE workspace_id = $1 ORDER BY created_at, id"#,
        workspace_id
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// A schedule to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchedule<'a> {
    pub workspace_id: Uuid,
    pub name: &'a str,
    pub cron_expr: &'a str,
    pub timezone: &'a str,
    pub prompt: &'a str,
    pub enabled: bool,
    pub next_run_at: DateTime<Utc>,
}

/// Creates a schedule (source `runtime`); returns its id.
pub async fn create(
    executor: impl PgExecutor<'_>,
    schedule: &NewSchedule<'_>,
) -> Result<Uuid, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO workspace_schedules
           (workspace_id, name, cron_expr, timezone, prompt, enabled, next_run_at, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'runtime') RETURNING id",
        schedule.workspace_id,
        schedule.name,
        schedule.cron_expr,
        schedule.timezone,
        schedule.prompt,
        schedule.enabled,
        schedule.next_run_at
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// A schedule's cron expression and time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub cron_expr: String,
    pub timezone: String,
}

/// The timing of one schedule of this workspace.
pub async fn timing(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    workspace_id: Uuid,
) -> Result<Option<Timing>, StoreError> {
    let row = sqlx::query_as!(
        Timing,
        "SELECT cron_expr, timezone FROM workspace_schedules WHERE id = $1 AND workspace_id = $2",
        id,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// The fields a PATCH may change; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulePatch<'a> {
    pub name: Option<&'a str>,
    pub cron_expr: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub prompt: Option<&'a str>,
    pub enabled: Option<bool>,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Applies a patch to one schedule of this workspace; whether there was one.
pub async fn update(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    workspace_id: Uuid,
    patch: &SchedulePatch<'_>,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspace_schedules SET
           name = COALESCE($3, name), cron_expr = COALESCE($4, cron_expr),
           timezone = COALESCE($5, timezone), prompt = COALESCE($6, prompt),
           enabled = COALESCE($7, enabled), next_run_at = COALESCE($8, next_run_at),
           updated_at = now()
         WHERE id = $1 AND workspace_id = $2",
        id,
        workspace_id,
        patch.name,
        patch.cron_expr,
        patch.timezone,
        patch.prompt,
        patch.enabled,
        patch.next_run_at
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes one schedule of this workspace; whether there was one.
pub async fn delete(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    workspace_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM workspace_schedules WHERE id = $1 AND workspace_id = $2",
        id,
        workspace_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The prompt of one schedule of this workspace.
pub async fn prompt(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    workspace_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let prompt = sqlx::query_scalar!(
        "SELECT prompt FROM workspace_schedules WHERE id = $1 AND workspace_id = $2",
        id,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(prompt)
}

/// One past run of a schedule (an `activity_logs` row of type `cron_run`).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub created_at: DateTime<Utc>,
    pub duration_ms: Option<i32>,
    pub status: Option<String>,
    pub error_detail: String,
    pub request_body: serde_json::Value,
}

/// The last 20 runs of a schedule, newest first.
pub async fn history(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    schedule_id: &str,
) -> Result<Vec<HistoryRow>, StoreError> {
    let rows = sqlx::query_as!(
        HistoryRow,
        r#"SELECT COALESCE(created_at, now()) AS "created_at!", duration_ms, status,
                  COALESCE(error_detail, '') AS "error_detail!",
                  COALESCE(request_body, '{}'::jsonb) AS "request_body!"
           FROM activity_logs
           WHERE workspace_id = $1 AND activity_type = 'cron_run'
             AND request_body->>'schedule_id' = $2
           ORDER BY created_at DESC LIMIT 20"#,
        workspace_id,
        schedule_id
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// One schedule across the platform, for the operators' health view.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformSchedule {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub schedule_id: Uuid,
    pub schedule_name: String,
    pub cron_expr: String,
    pub timezone: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Every schedule of a workspace that is not removed, by workspace name then schedule name.
pub async fn platform(executor: impl PgExecutor<'_>) -> Result<Vec<PlatformSchedule>, StoreError> {
    let rows = sqlx::query_as!(
        PlatformSchedule,
        "SELECT w.id AS workspace_id, w.name AS workspace_name, s.id AS schedule_id,
                s.name AS schedule_name, s.cron_expr, s.timezone, s.last_run_at, s.next_run_at
         FROM workspace_schedules s JOIN workspaces w ON w.id = s.workspace_id
         WHERE w.status <> 'removed'
         ORDER BY w.name, s.name"
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// A due schedule, locked by the claiming transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub cron_expr: String,
    pub timezone: String,
    pub prompt: String,
}

/// Locks up to `limit` due schedules, oldest slot first, skipping those another replica holds.
/// The caller advances them ([`advance`]) in the same transaction: once it commits, no replica
/// sees them due again, so each due slot is claimed exactly once.
pub async fn lock_due(
    executor: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<DueSchedule>, StoreError> {
    let rows = sqlx::query_as!(
        DueSchedule,
        "SELECT id, workspace_id, name, cron_expr, timezone, prompt FROM workspace_schedules
         WHERE enabled AND next_run_at IS NOT NULL AND next_run_at <= now()
         ORDER BY next_run_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
        limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Marks claimed schedules as run now and moves each to its next slot (`None`: the expression
/// no longer yields one, so the schedule stops until it is edited).
pub async fn advance(
    executor: impl PgExecutor<'_>,
    ids: &[Uuid],
    next_runs: &[Option<DateTime<Utc>>],
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE workspace_schedules s
         SET last_run_at = now(), next_run_at = claimed.next_run_at,
             run_count = s.run_count + 1, updated_at = now()
         FROM UNNEST($1::uuid[], $2::timestamptz[]) AS claimed(id, next_run_at)
         WHERE s.id = claimed.id",
        ids,
        next_runs as &[Option<DateTime<Utc>>]
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Records how a run went (`ok`, `error`, `skipped`). `empty` says whether an `ok` answer was
/// empty (`None` for other outcomes): three empty answers in a row make the schedule `stale`
/// (the original's `internal/scheduler/scheduler.go:443-480`); a non-empty one resets the count.
/// Returns the status recorded.
pub async fn record_outcome(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
    error: &str,
    empty: Option<bool>,
) -> Result<String, StoreError> {
    let recorded = sqlx::query_scalar!(
        r#"UPDATE workspace_schedules SET
             consecutive_empty_runs = CASE WHEN $4::bool IS NULL THEN consecutive_empty_runs
                                           WHEN $4 THEN consecutive_empty_runs + 1 ELSE 0 END,
             last_status = CASE WHEN $4 AND consecutive_empty_runs + 1 >= 3 THEN 'stale'
                                ELSE $2 END,
             last_error = CASE WHEN $4 AND consecutive_empty_runs + 1 >= 3
                               THEN 'empty response ' || (consecutive_empty_runs + 1)
                                    || ' consecutive times — agent may be phantom-producing (#795)'
                               ELSE $3 END,
             updated_at = now()
           WHERE id = $1
           RETURNING last_status AS "last_status!""#,
        id,
        status,
        error,
        empty
    )
    .fetch_optional(executor)
    .await?;
    Ok(recorded.unwrap_or_else(|| status.to_string()))
}

/// A workspace's running tasks and how many it may run at once (0 and 1 when unknown).
pub async fn workspace_load(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<(i32, i32), StoreError> {
    let row = sqlx::query!(
        r#"SELECT COALESCE(active_tasks, 0) AS "active!", max_concurrent_tasks AS "max!"
           FROM workspaces WHERE id = $1"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map_or((0, 1), |row| (row.active, row.max)))
}
