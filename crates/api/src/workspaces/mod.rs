//! Workspaces: metadata (list, create, get, patch, delete, `/state`) and the model/provider
//! settings. One file per action; `views.rs` holds the row's two projections on the wire.

mod create;
mod delete;
mod get;
mod list;
pub mod model;
mod plan;
mod state;
mod update;
mod validate;
mod views;

use uuid::Uuid;

// Each handler with the operation its `#[utoipa::path]` generated (`__path_*`), which the
// route table's `route!` rows document.
pub use create::{__path_create, create};
pub(crate) use create::{Seed, create_workspace};
pub use delete::{__path_delete, delete};
pub use get::{__path_get, get};
pub use list::{__path_list, list};
pub(crate) use plan::{Canvas, CreatePayload, plan_payload};
pub use state::{__path_state, state};
pub use update::{__path_update, update};

use crate::error::StoreContext;
use crate::{ApiError, AppState};

/// Opens a transaction on the workspace `id`, which must exist (404 otherwise); database errors
/// answer with `failed`.
async fn begin_on_existing(
    state: &AppState,
    id: Uuid,
    failed: &str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
    let mut tx = state.db.begin().await.context(failed)?;
    if store::workspaces::status(&mut *tx, id)
        .await
        .context(failed)?
        .is_none()
    {
        return Err(ApiError::workspace_not_found());
    }
    Ok(tx)
}
