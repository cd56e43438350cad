//! `activity_logs`: what agents report they did (A2A calls, task updates, logs, errors).

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// One reported activity, as inserted.
#[derive(Debug, Clone)]
pub struct NewActivity<'a> {
    pub workspace_id: Uuid,
    pub activity_type: &'a str,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub method: Option<&'a str>,
    pub summary: Option<&'a str>,
    pub request_body: Option<&'a RawValue>,
    pub response_body: Option<&'a RawValue>,
    pub duration_ms: Option<i32>,
    pub status: &'a str,
    pub error_detail: Option<&'a str>,
    /// The agent's tool calls behind an answer (`result.metadata.tool_trace`).
    pub tool_trace: Option<&'a RawValue>,
}

/// One row of `activity_logs` as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub activity_type: String,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub method: Option<String>,
    pub summary: Option<String>,
    pub request_body: Option<serde_json::Value>,
    pub response_body: Option<serde_json::Value>,
    pub duration_ms: Option<i32>,
    pub status: String,
    pub error_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub tool_trace: Option<serde_json::Value>,
}

/// Which rows a listing keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityFilter {
    /// Only this `activity_type`.
    pub activity_type: Option<String>,
    /// `Some(true)`: only rows with a `source_id` (reported by an agent); `Some(false)`: only rows
    /// without one (the canvas's own).
    pub from_agent: Option<bool>,
    /// Only rows from or to this workspace.
    pub peer_id: Option<Uuid>,
    /// Only rows older than this.
    pub before: Option<DateTime<Utc>>,
    /// Only rows of the last this many seconds.
    pub since_secs: Option<i64>,
    /// Only rows after this one (`created_at`, then `id`), oldest first: an inbox cursor.
    pub after: Option<Cursor>,
    /// At most this many rows, newest first (oldest first after a cursor).
    pub limit: i64,
}

/// A position in a workspace's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// The position of row `id` in the workspace's activity; `None` when the row is not there (pruned,
/// or another workspace's).
pub async fn cursor(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<Cursor>, StoreError> {
    let cursor = sqlx::query_as!(
        Cursor,
        r#"SELECT created_at AS "created_at!", id FROM activity_logs
           WHERE id = $1 AND workspace_id = $2"#,
        id,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(cursor)
}

/// Inserts one activity and returns its id.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    activity: &NewActivity<'_>,
) -> Result<Uuid, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO activity_logs (workspace_id, activity_type, source_id, target_id, method,
                                    summary, request_body, response_body, duration_ms, status,
                                    error_detail, tool_trace)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9, $10, $11,
                 $12::text::jsonb)
         RETURNING id",
        activity.workspace_id,
        activity.activity_type,
        activity.source_id,
        activity.target_id,
        activity.method,
        activity.summary,
        activity.request_body.map(RawValue::get),
        activity.response_body.map(RawValue::get),
        activity.duration_ms,
        activity.status,
        activity.error_detail,
        activity.tool_trace.map(RawValue::get)
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// Inserts several activities in one statement, in the order given, each stamped with the clock
/// at its insert (`clock_timestamp()`, so a batch keeps its order in the listings). Rows of a
/// workspace that no longer exists are skipped (they would be deleted with it); returns how many
/// were inserted.
pub async fn insert_many<'a>(
    executor: impl PgExecutor<'_>,
    activities: &[NewActivity<'a>],
) -> Result<u64, StoreError> {
    if activities.is_empty() {
        return Ok(0);
    }
    let column = |f: fn(&NewActivity<'_>) -> Option<String>| -> Vec<Option<String>> {
        activities.iter().map(f).collect()
    };
    let json = |f: fn(&NewActivity<'a>) -> Option<&'a RawValue>| -> Vec<Option<&'a str>> {
        activities.iter().map(|a| f(a).map(RawValue::get)).collect()
    };
    let workspace_ids: Vec<Uuid> = activities.iter().map(|a| a.workspace_id).collect();
    let types: Vec<String> = activities
        .iter()
        .map(|a| a.activity_type.to_string())
        .collect();
    let source_ids: Vec<Option<Uuid>> = activities.iter().map(|a| a.source_id).collect();
    let target_ids: Vec<Option<Uuid>> = activities.iter().map(|a| a.target_id).collect();
    let durations: Vec<Option<i32>> = activities.iter().map(|a| a.duration_ms).collect();
    let statuses: Vec<String> = activities.iter().map(|a| a.status.to_string()).collect();
    let done = sqlx::query!(
        r#"INSERT INTO activity_logs (workspace_id, activity_type, source_id, target_id, method,
                                     summary, request_body, response_body, duration_ms, status,
                                     error_detail, tool_trace, created_at)
           SELECT r.workspace_id, r.activity_type, r.source_id, r.target_id, r.method, r.summary,
                  r.request_body::jsonb, r.response_body::jsonb, r.duration_ms, r.status,
                  r.error_detail, r.tool_trace::jsonb, clock_timestamp()
           FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::int4[], $10::text[], $11::text[], $12::text[])
                WITH ORDINALITY AS r(workspace_id, activity_type, source_id, target_id, method,
                                     summary, request_body, response_body, duration_ms, status,
                                     error_detail, tool_trace, n)
           WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = r.workspace_id)
           ORDER BY r.n"#,
        &workspace_ids,
        &types,
        &source_ids as &[Option<Uuid>],
        &target_ids as &[Option<Uuid>],
        &column(|a| a.method.map(str::to_string)) as &[Option<String>],
        &column(|a| a.summary.map(str::to_string)) as &[Option<String>],
        &json(|a| a.request_body) as &[Option<&str>],
        &json(|a| a.response_body) as &[Option<&str>],
        &durations as &[Option<i32>],
        &statuses,
        &column(|a| a.error_detail.map(str::to_string)) as &[Option<String>],
        &json(|a| a.tool_trace) as &[Option<&str>],
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// A workspace's activities, newest first, or oldest first after a cursor.
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    filter: &ActivityFilter,
) -> Result<Vec<ActivityRow>, StoreError> {
    let rows = sqlx::query_as!(
        ActivityRow,
        r#"SELECT id, workspace_id, activity_type, source_id, target_id, method, summary,
                  request_body, response_body, duration_ms,
                  COALESCE(status, 'ok') AS "status!", error_detail,
                  created_at AS "created_at!", tool_trace
           FROM activity_logs
           WHERE workspace_id = $1
             AND ($2::text IS NULL OR activity_type = $2)
             AND ($3::bool IS NULL OR (source_id IS NOT NULL) = $3)
             AND ($4::uuid IS NULL OR source_id = $4 OR target_id = $4)
             AND ($5::timestamptz IS NULL OR created_at < $5)
             AND ($6::float8 IS NULL OR created_at >= now() - make_interval(secs => $6))
             AND ($7::timestamptz IS NULL OR (created_at, id) > ($7, $8::uuid))
           ORDER BY CASE WHEN $7::timestamptz IS NOT NULL THEN created_at END ASC,
                    CASE WHEN $7::timestamptz IS NOT NULL THEN id END ASC,
                    created_at DESC, id DESC
           LIMIT $9"#,
        workspace_id,
        filter.activity_type.as_deref(),
        filter.from_agent,
        filter.peer_id,
        filter.before,
        filter.since_secs.map(|s| s as f64),
        filter.after.map(|c| c.created_at),
        filter.after.map(|c| c.id),
        filter.limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Deletes activities older than `days` days; the number deleted.
pub async fn delete_older_than(
    executor: impl PgExecutor<'_>,
    days: i32,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM activity_logs WHERE created_at < now() - make_interval(days => $1)",
        days
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
