//! Delegations: the `activity_logs` rows a delegating workspace keeps of its delegations
//! (`method` `delegate` / `delegate_result`), and the durable ledger `delegations` that operators
//! list and the sweeper fails when stale (the original's `handlers/delegation.go`,
//! `delegation_ledger.go`, `delegation_sweeper.go`, `admin_delegations.go` at 624ef4d0).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// How many rows `GET /workspaces/{id}/delegations` lists.
pub const LIST_LIMIT: i64 = 50;
/// The longest task preview the ledger keeps, in bytes.
pub const TASK_PREVIEW_BYTES: usize = 4096;

/// One delegation row of the source workspace's activity log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelegationRow<'a> {
    pub workspace_id: Uuid,
    pub method: &'a str,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub summary: &'a str,
    pub request_body: Option<&'a serde_json::Value>,
    pub response_body: Option<&'a serde_json::Value>,
    pub status: &'a str,
    pub error_detail: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

impl<'a> NewDelegationRow<'a> {
    /// The source's `delegate` row: the task it sent to `target`.
    pub fn delegate(
        source: Uuid,
        target: Uuid,
        summary: &'a str,
        request: &'a serde_json::Value,
        status: &'a str,
        idempotency_key: Option<&'a str>,
    ) -> Self {
        Self {
            workspace_id: source,
            method: "delegate",
            source_id: Some(source),
            target_id: Some(target),
            summary,
            request_body: Some(request),
            response_body: None,
            status,
            error_detail: None,
            idempotency_key,
        }
    }

    /// A `delegate_result` row on the source: how a delegation ended (`target` is `None` when an
    /// agent reported it, as in the original).
    pub fn result(
        source: Uuid,
        target: Option<Uuid>,
        summary: &'a str,
        response: Option<&'a serde_json::Value>,
        status: &'a str,
        error_detail: Option<&'a str>,
    ) -> Self {
        Self {
            workspace_id: source,
            method: "delegate_result",
            source_id: Some(source),
            target_id: target,
            summary,
            request_body: None,
            response_body: response,
            status,
            error_detail,
            idempotency_key: None,
        }
    }
}

/// Inserts a delegation row (`activity_type` `delegation`), without any event.
pub async fn insert_row(
    executor: impl PgExecutor<'_>,
    row: &NewDelegationRow<'_>,
) -> Result<Uuid, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO activity_logs (workspace_id, activity_type, source_id, target_id, method,
                                    summary, request_body, response_body, status, error_detail,
                                    idempotency_key)
         VALUES ($1, 'delegation', $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id",
        row.workspace_id,
        row.source_id,
        row.target_id,
        row.method,
        row.summary,
        row.request_body,
        row.response_body,
        row.status,
        row.error_detail,
        row.idempotency_key
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// The delegation a source already started under an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedDelegation {
    pub delegation_id: Option<String>,
    pub status: String,
    pub target_id: Option<Uuid>,
}

/// The source's row carrying `key`, if any.
pub async fn by_idempotency_key(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
) -> Result<Option<KeyedDelegation>, StoreError> {
    let row = sqlx::query_as!(
        KeyedDelegation,
        r#"SELECT request_body->>'delegation_id' AS delegation_id,
                  COALESCE(status, '') AS "status!", target_id
           FROM activity_logs WHERE workspace_id = $1 AND idempotency_key = $2
           LIMIT 1"#,
        workspace_id,
        key
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Deletes the source's failed rows with `key`, so the key can be used again.
pub async fn delete_failed_with_key(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM activity_logs
         WHERE workspace_id = $1 AND idempotency_key = $2 AND status = 'failed'",
        workspace_id,
        key
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Sets the status of the source's `delegate` row(s) of a delegation; `error_detail` only when
/// given (`delegation.go:434-453`).
pub async fn set_row_status(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    delegation_id: &str,
    status: &str,
    error_detail: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE activity_logs
         SET status = $3, error_detail = COALESCE(NULLIF($4, ''), error_detail)
         WHERE workspace_id = $1 AND method = 'delegate'
           AND request_body->>'delegation_id' = $2",
        workspace_id,
        delegation_id,
        status,
        error_detail
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// One row of `GET /workspaces/{id}/delegations`.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegationActivity {
    pub id: Uuid,
    pub activity_type: String,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub error_detail: Option<String>,
    pub request_body: Option<serde_json::Value>,
    pub response_body: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// The source's newest delegation rows, at most [`LIST_LIMIT`].
pub async fn list_rows(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Vec<DelegationActivity>, StoreError> {
    let rows = sqlx::query_as!(
        DelegationActivity,
        r#"SELECT id, activity_type, source_id, target_id, summary, status, error_detail,
                  request_body, response_body, created_at AS "created_at!"
           FROM activity_logs
           WHERE workspace_id = $1 AND method IN ('delegate', 'delegate_result')
           ORDER BY created_at DESC
           LIMIT $2"#,
        workspace_id,
        LIST_LIMIT
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// A delegation entering the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLedgerEntry<'a> {
    pub delegation_id: &'a str,
    pub caller_id: Uuid,
    pub callee_id: Uuid,
    pub task_preview: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// Adds a delegation to the ledger as `queued` (deadline in 6 hours); an id or idempotency key
/// already there is left as it is.
pub async fn ledger_insert(
    executor: impl PgExecutor<'_>,
    entry: &NewLedgerEntry<'_>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO delegations (delegation_id, caller_id, callee_id, task_preview, idempotency_key)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
        entry.delegation_id,
        entry.caller_id,
        entry.callee_id,
        entry.task_preview,
        entry.idempotency_key
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Moves a ledger entry to `status` when the move is allowed (`delegation_ledger.go:111-178`:
/// queued → dispatched, in_progress, failed; dispatched → in_progress, completed, failed;
/// in_progress → completed, failed, stuck); returns whether it moved. Empty texts clear.
pub async fn ledger_set_status(
    executor: impl PgExecutor<'_>,
    delegation_id: &str,
    status: &str,
    error_detail: &str,
    result_preview: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE delegations
         SET status = $2, error_detail = NULLIF($3, ''), result_preview = NULLIF($4, ''),
             updated_at = now()
         WHERE delegation_id = $1 AND status <> $2
           AND ((status = 'queued' AND $2 IN ('dispatched', 'in_progress', 'failed'))
             OR (status = 'dispatched' AND $2 IN ('in_progress', 'completed', 'failed'))
             OR (status = 'in_progress' AND $2 IN ('completed', 'failed', 'stuck')))",
        delegation_id,
        status,
        error_detail,
        result_preview
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub delegation_id: String,
    pub caller_id: Uuid,
    pub callee_id: Uuid,
    pub task_preview: String,
    pub status: String,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub deadline: DateTime<Utc>,
    pub result_preview: Option<String>,
    pub error_detail: Option<String>,
    pub retry_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The newest ledger entries whose status is one of `statuses`, at most `limit`.
pub async fn ledger_list(
    executor: impl PgExecutor<'_>,
    statuses: &[&str],
    limit: i64,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_string()).collect();
    let rows = sqlx::query_as!(
        LedgerEntry,
        "SELECT delegation_id, caller_id, callee_id, task_preview, status, last_heartbeat,
                deadline, result_preview, error_detail, retry_count, created_at, updated_at
         FROM delegations WHERE status = ANY($1)
         ORDER BY created_at DESC LIMIT $2",
        &statuses,
        limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// How many ledger entries there are of each status present.
pub async fn ledger_stats(executor: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT status, count(*) AS "count!" FROM delegations GROUP BY status ORDER BY status"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// In-flight entries past their deadline, now `failed`.
    pub failed: u64,
    /// `in_progress` entries whose heartbeat is older than the threshold, now `stuck`.
    pub stuck: u64,
}

/// One sweep of the ledger (`delegation_sweeper.go:180-265`): in-flight entries past their
/// deadline fail with `deadline exceeded by sweeper`; `in_progress` entries whose last heartbeat
/// is older than `stuck_after_secs` become `stuck` with `no heartbeat for <duration>`. Entries
/// without a heartbeat are left alone.
pub async fn sweep(
    executor: impl PgExecutor<'_> + Copy,
    stuck_after_secs: f64,
) -> Result<Swept, StoreError> {
    let failed = sqlx::query!(
        "UPDATE delegations
         SET status = 'failed', error_detail = 'deadline exceeded by sweeper',
             result_preview = NULL, updated_at = now()
         WHERE status IN ('queued', 'dispatched', 'in_progress') AND deadline < now()"
    )
    .execute(executor)
    .await?
    .rows_affected();
    let stuck = sqlx::query!(
        r#"UPDATE delegations
           SET status = 'stuck',
               error_detail = 'no heartbeat for '
                 || floor(extract(epoch FROM now() - last_heartbeat) / 60)::bigint || 'm'
                 || floor(extract(epoch FROM now() - last_heartbeat))::bigint % 60 || 's',
               result_preview = NULL, updated_at = now()
           WHERE status = 'in_progress' AND last_heartbeat IS NOT NULL
             AND last_heartbeat < now() - make_interval(secs => $1)"#,
        stuck_after_secs
    )
    .execute(executor)
    .await?
    .rows_affected();
    Ok(Swept { failed, stuck })
}
