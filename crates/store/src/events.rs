//! `structure_events`: the record of what happened to workspaces.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// Records one event (`WORKSPACE_PROVISIONING`, `WORKSPACE_REMOVED`, …). Subscribers of the live
/// stream hear of it through PostgreSQL `NOTIFY`.
pub async fn record(
    executor: impl PgExecutor<'_>,
    event_type: &str,
    workspace_id: Option<Uuid>,
    payload: &serde_json::Value,
) -> Result<Uuid, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO structure_events (event_type, workspace_id, payload) VALUES ($1, $2, $3) RETURNING id",
        event_type,
        workspace_id,
        payload
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}
