//! `approval_requests`: an agent asks a human to approve an action; the canvas decides.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{Db, StoreError};

/// How many approvals a listing returns at most (the original's `LIMIT 50`).
pub const LIST_LIMIT: i64 = 50;

/// A new request. `task_id` and `reason` are stored as given (`""` when the agent sent none, as
/// the original stores them); `context` is the JSON the agent sent (`null` when absent).
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    pub workspace_id: Uuid,
    pub task_id: &'a str,
    pub action: &'a str,
    pub reason: &'a str,
    pub context: &'a serde_json::Value,
}

/// The created request's id and its workspace's parent (to escalate to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
}

/// One request of a workspace's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub id: Uuid,
    pub task_id: Option<String>,
    pub action: String,
    pub reason: Option<String>,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One pending request with its workspace's name.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub action: String,
    pub reason: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// Records a request. A workspace that does not exist is a foreign-key violation
/// ([`StoreError::is_missing_reference`]).
pub async fn create(
    executor: impl PgExecutor<'_>,
    approval: &NewApproval<'_>,
) -> Result<Created, StoreError> {
    let row = sqlx::query!(
        r#"WITH created AS (
             INSERT INTO approval_requests (workspace_id, task_id, action, reason, context)
             VALUES ($1, $2, $3, $4, $5) RETURNING id, workspace_id
           )
           SELECT created.id AS "id!", w.parent_id
           FROM created LEFT JOIN workspaces w ON w.id = created.workspace_id"#,
        approval.workspace_id,
        approval.task_id,
        approval.action,
        approval.reason,
        approval.context
    )
    .fetch_one(executor)
    .await?;
    Ok(Created {
        id: row.id,
        parent_id: row.parent_id,
    })
}

/// A workspace's newest requests of any status, at most [`LIST_LIMIT`].
pub async fn list_for_workspace(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Vec<ApprovalRow>, StoreError> {
    let rows = sqlx::query_as!(
        ApprovalRow,
        r#"SELECT id, task_id, action, reason, status AS "status!", decided_by, decided_at,
                  created_at AS "created_at!"
           FROM approval_requests
           WHERE workspace_id = $1 AND status IS NOT NULL AND created_at IS NOT NULL
           ORDER BY created_at DESC
           LIMIT $2"#,
        workspace_id,
        LIST_LIMIT
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// The newest pending requests across all workspaces, at most [`LIST_LIMIT`], leaving out those
/// pending for longer than `max_age_seconds` (they are due to expire), and whether any such
/// request is due. A read: the poll expires them ([`expire_pending`]) only when one is due.
/// Concurrent polls share a statement ([`crate::batch`]).
pub async fn list_pending(
    db: &Db,
    max_age_seconds: f64,
) -> Result<(Vec<PendingRow>, bool), StoreError> {
    let statement_db = db.clone();
    let pending = db
        .shared()
        .pending_approvals
        .get(max_age_seconds.to_bits(), move |age_bounds| async move {
            // One bound in practice (the configured one): one statement per bound.
            let mut answers = HashMap::new();
            for bits in age_bounds {
                let answer = query_pending(&statement_db, f64::from_bits(bits)).await?;
                answers.insert(bits, answer);
            }
            Ok(answers)
        })
        .await?;
    Ok(pending.unwrap_or_default())
}

async fn query_pending(
    executor: impl PgExecutor<'_>,
    max_age_seconds: f64,
) -> Result<(Vec<PendingRow>, bool), StoreError> {
    let rows = sqlx::query!(
        r#"WITH due AS (
             SELECT EXISTS (
               SELECT 1 FROM approval_requests
               WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
             ) AS due
           )
           SELECT due.due AS "due!", a.id AS "id?", a.workspace_id AS "workspace_id?",
                  a.workspace_name AS "workspace_name?", a.action AS "action?", a.reason,
                  a.status AS "status?", a.created_at AS "created_at?"
           FROM due LEFT JOIN LATERAL (
             SELECT a.id, w.id AS workspace_id, w.name AS workspace_name, a.action, a.reason,
                    a.status, a.created_at
             FROM approval_requests a
             JOIN workspaces w ON w.id = a.workspace_id
             WHERE a.status = 'pending' AND a.created_at >= now() - make_interval(secs => $1)
             ORDER BY a.created_at DESC
             LIMIT $2
           ) a ON true"#,
        max_age_seconds,
        LIST_LIMIT
    )
    .fetch_all(executor)
    .await?;
    let due = rows.first().is_some_and(|row| row.due);
    let pending = rows
        .into_iter()
        .filter_map(|row| {
            Some(PendingRow {
                id: row.id?,
                workspace_id: row.workspace_id?,
                workspace_name: row.workspace_name?,
                action: row.action?,
                reason: row.reason,
                status: row.status?,
                created_at: row.created_at?,
            })
        })
        .collect();
    Ok((pending, due))
}

/// Denies as `auto-expired` every request pending for longer than `max_age_seconds`; returns how
/// many.
pub async fn expire_pending(
    executor: impl PgExecutor<'_>,
    max_age_seconds: f64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "UPDATE approval_requests
         SET status = 'denied', decided_by = 'auto-expired', decided_at = now()
         WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)",
        max_age_seconds
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Decides a pending request of this workspace; returns whether one was decided (an unknown or
/// already decided request is not).
pub async fn decide(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    approval_id: Uuid,
    decision: &str,
    decided_by: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE approval_requests SET status = $1, decided_by = $2, decided_at = now()
         WHERE id = $3 AND workspace_id = $4 AND status = 'pending'",
        decision,
        decided_by,
        approval_id,
        workspace_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the requests of these workspaces (before a purge: the foreign key does not cascade).
pub async fn delete_for(
    executor: impl PgExecutor<'_>,
    workspace_ids: &[Uuid],
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM approval_requests WHERE workspace_id = ANY($1)",
        workspace_ids
    )
    .execute(executor)
    .await?;
    Ok(())
}
