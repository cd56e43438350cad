//! `audit_events`: the agents' append-only, HMAC-chained ledger. The agents' runtime writes it;
//! the server only reads it (and inserts rows in tests and imports).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// Which rows of a workspace's ledger to read. `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub agent_id: Option<String>,
    pub session_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One ledger row, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub timestamp: DateTime<Utc>,
    pub agent_id: String,
    pub session_id: String,
    pub operation: String,
    pub input_hash: Option<String>,
    pub output_hash: Option<String>,
    pub model_used: Option<String>,
    pub human_oversight_flag: bool,
    pub risk_flag: bool,
    pub prev_hmac: Option<String>,
    pub hmac: String,
    pub workspace_id: Uuid,
}

/// How many rows of the workspace's ledger match the filter.
pub async fn count(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    filter: &AuditFilter,
) -> Result<i64, StoreError> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM audit_events
           WHERE workspace_id = $1
             AND ($2::text IS NULL OR agent_id = $2)
             AND ($3::text IS NULL OR session_id = $3)
             AND ($4::timestamptz IS NULL OR timestamp >= $4)
             AND ($5::timestamptz IS NULL OR timestamp < $5)"#,
        workspace_id,
        filter.agent_id,
        filter.session_id,
        filter.from,
        filter.to
    )
    .fetch_one(executor)
    .await?;
    Ok(total)
}

/// One page of the matching rows, oldest first (ties by id).
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = sqlx::query_as!(
        AuditEvent,
        r#"SELECT id, timestamp, agent_id, session_id, operation, input_hash, output_hash,
                  model_used, human_oversight_flag, risk_flag, prev_hmac, hmac, workspace_id
           FROM audit_events
           WHERE workspace_id = $1
             AND ($2::text IS NULL OR agent_id = $2)
             AND ($3::text IS NULL OR session_id = $3)
             AND ($4::timestamptz IS NULL OR timestamp >= $4)
             AND ($5::timestamptz IS NULL OR timestamp < $5)
           ORDER BY timestamp ASC, id ASC
           LIMIT $6 OFFSET $7"#,
        workspace_id,
        filter.agent_id,
        filter.session_id,
        filter.from,
        filter.to,
        limit,
        offset
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Appends one row as given (the agents' runtime computes `hmac` and `prev_hmac`).
pub async fn insert(executor: impl PgExecutor<'_>, event: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO audit_events (id, timestamp, agent_id, session_id, operation, input_hash,
                                   output_hash, model_used, human_oversight_flag, risk_flag,
                                   prev_hmac, hmac, workspace_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        event.id,
        event.timestamp,
        event.agent_id,
        event.session_id,
        event.operation,
        event.input_hash,
        event.output_hash,
        event.model_used,
        event.human_oversight_flag,
        event.risk_flag,
        event.prev_hmac,
        event.hmac,
        event.workspace_id
    )
    .execute(executor)
    .await?;
    Ok(())
}
