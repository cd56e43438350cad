//! `GET /workspaces`.

use axum::Json;
use axum::extract::State;

use super::views::FullView;
use crate::error::{ErrorBody, StoreContext};
use crate::{ApiError, AppState};

/// `GET /workspaces` (admin): every live workspace, oldest first.
#[utoipa::path(get, path = "/workspaces", tag = "workspaces", responses(
    (status = 200, description = "Every live workspace", body = Vec<FullView>),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 500, description = "Query failed", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<FullView>>, ApiError> {
    let rows = store::workspaces::list_live(&state.db)
        .await
        .context("query failed")?;
    Ok(Json(rows.iter().map(FullView::from).collect()))
}
