//! `canvas_layouts`: where each workspace sits on the canvas.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// Sets a workspace's position, creating its layout row if needed.
pub async fn upsert_position(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    x: f64,
    y: f64,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO canvas_layouts (workspace_id, x, y) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id) DO UPDATE SET x = EXCLUDED.x, y = EXCLUDED.y",
        workspace_id,
        x,
        y
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Sets a workspace's collapsed flag, creating its layout row if needed.
pub async fn upsert_collapsed(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    collapsed: bool,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO canvas_layouts (workspace_id, collapsed) VALUES ($1, $2)
         ON CONFLICT (workspace_id) DO UPDATE SET collapsed = EXCLUDED.collapsed",
        workspace_id,
        collapsed
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes the layout rows of these workspaces.
pub async fn delete_for(
    executor: impl PgExecutor<'_>,
    workspace_ids: &[Uuid],
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM canvas_layouts WHERE workspace_id = ANY($1)",
        workspace_ids
    )
    .execute(executor)
    .await?;
    Ok(())
}
