//! `canvas_viewport`: where the canvas was last panned and zoomed, one row for the whole tenant.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The fixed id the original upserts (`handlers/viewport.go:50` at 624ef4d0), so a database it
/// wrote keeps one row.
pub const VIEWPORT_ID: Uuid = Uuid::from_u128(1);

/// A saved viewport.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    pub x: f64,
    pub y: f64,
    pub zoom: f64,
}

/// The most recently saved viewport, if any.
pub async fn latest(executor: impl PgExecutor<'_>) -> Result<Option<Viewport>, StoreError> {
    let row = sqlx::query_as!(
        Viewport,
        "SELECT x, y, zoom FROM canvas_viewport ORDER BY saved_at DESC NULLS LAST LIMIT 1"
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Saves the viewport (the single row, created on first save).
pub async fn save(executor: impl PgExecutor<'_>, viewport: Viewport) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO canvas_viewport (id, x, y, zoom, saved_at) VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (id) DO UPDATE
           SET x = EXCLUDED.x, y = EXCLUDED.y, zoom = EXCLUDED.zoom, saved_at = now()",
        VIEWPORT_ID,
        viewport.x,
        viewport.y,
        viewport.zoom
    )
    .execute(executor)
    .await?;
    Ok(())
}
