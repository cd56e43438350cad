//! `workspace_config` (the per-workspace JSON document of `/workspaces/{id}/config`) and the
//! small per-workspace reads the settings and external-workspace routes need.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The stored config document; `None` when the workspace has none.
pub async fn get(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<serde_json::Value>, StoreError> {
    let data = sqlx::query_scalar!(
        "SELECT data FROM workspace_config WHERE workspace_id = $1",
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(data)
}

/// Merges `patch` into the document with PostgreSQL's `||` (a shallow merge for objects), or
/// stores it as the first document (`handlers/config.go:62-67` at 624ef4d0).
pub async fn merge(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    patch: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO workspace_config (workspace_id, data, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (workspace_id) DO UPDATE
           SET data = workspace_config.data || EXCLUDED.data, updated_at = now()",
        workspace_id,
        patch
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Locks the workspace's row for the rest of the transaction; `false` when there is no row.
pub async fn lock_workspace(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<bool, StoreError> {
    let found = sqlx::query_scalar!(
        "SELECT id FROM workspaces WHERE id = $1 FOR UPDATE",
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(found.is_some())
}

/// `COALESCE(runtime, '')` of the workspace, whatever its status; `None` when there is no row.
pub async fn runtime(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let runtime = sqlx::query_scalar!(
        r#"SELECT COALESCE(runtime, '') AS "runtime!" FROM workspaces WHERE id = $1"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(runtime)
}

/// `agent_card->>'url'`: `None` when there is no row or no URL in the card.
pub async fn agent_card_url(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let url = sqlx::query_scalar!(
        "SELECT agent_card->>'url' FROM workspaces WHERE id = $1",
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(url.flatten())
}
