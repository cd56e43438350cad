//! `DELETE /workspaces/{id}`: soft delete (or purge) with the live descendants.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::begin_on_existing;
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true` cascades to the sub-workspaces.
    confirm: Option<String>,
    /// `true` hard-deletes.
    purge: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub cascade_deleted: usize,
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChildRef {
    pub id: Uuid,
    pub name: String,
}

/// 409 of a delete with children and no `?confirm=true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmationRequired {
    pub children: Vec<ChildRef>,
    pub children_count: usize,
    pub message: &'static str,
    pub status: &'static str,
}

/// `DELETE /workspaces/{id}?confirm=&purge=` (admin): soft-deletes the workspace and all its live
/// descendants in one transaction (or hard-deletes them with `purge=true`).
#[utoipa::path(delete, path = "/workspaces/{id}", tag = "workspaces",
    params(("id" = Uuid, Path), DeleteQuery),
    responses(
    (status = 200, description = "Removed or purged", body = Deleted),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 409, description = "Has children", body = ConfirmationRequired),
    (status = 500, description = "Removed, but an instance did not stop", body = StopFailed),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let confirmed = query.confirm.as_deref() == Some("true");
    let purge = query.purge.as_deref() == Some("true");
    let failed = if purge {
        "purge failed"
    } else {
        "failed to delete workspace"
    };

    let mut tx = begin_on_existing(&state, id, failed).await?;
    let children = store::workspaces::live_children(&mut *tx, id)
        .await
        .context("failed to check children")?;
    if !children.is_empty() && !confirmed {
        let refused = ConfirmationRequired {
            children_count: children.len(),
            children: children
                .into_iter()
                .map(|c| ChildRef {
                    id: c.id,
                    name: c.name,
                })
                .collect(),
            message: "This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete.",
            status: "confirmation_required",
        };
        return Err(ApiError::with_body(StatusCode::CONFLICT, &refused));
    }
    // Read before the rows go: a purge deletes them.
    let instances = store::provisioning::instances_in_tree(&mut *tx, id)
        .await
        .context(failed)?;
    let (descendants, local) = remove(tx, id, purge, failed).await?;
    crate::files::remove_local_folders(&state.config, &local).await;
    let stop_failures = crate::provisioner::flow::stop_all(&state, &instances).await;
    if !stop_failures.is_empty() {
        return Err(stop_failed(descendants.len() + 1, &stop_failures));
    }

    Ok(Json(Deleted {
        cascade_deleted: descendants.len(),
        status: if purge { "purged" } else { "removed" },
    }))
}

/// 500 of a delete whose rows are removed but some instance did not stop
/// (`workspace_crud.go:487-495` at 624ef4d0).
#[derive(Debug, Serialize, ToSchema)]
pub struct StopFailed {
    pub error: String,
    pub removed_count: usize,
    pub stop_failures: usize,
}

fn stop_failed(removed_count: usize, failures: &[String]) -> ApiError {
    let body = StopFailed {
        error: format!(
            "workspace marked removed, but {} stop call(s) failed — please retry: {}",
            failures.len(),
            failures.join("; ")
        ),
        removed_count,
        stop_failures: failures.len(),
    };
    ApiError::with_body(StatusCode::INTERNAL_SERVER_ERROR, &body)
}

/// Removes (or purges) the workspace and its live descendants, records their events and commits;
/// the descendants, and which of all those have local files.
async fn remove(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    id: Uuid,
    purge: bool,
    failed: &str,
) -> Result<(Vec<Uuid>, Vec<Uuid>), ApiError> {
    let descendants = store::workspaces::live_descendants(&mut *tx, id)
        .await
        .context(failed)?;
    let mut all = descendants.clone();
    all.push(id);
    let local = store::file_targets::local_among(&mut *tx, &all)
        .await
        .context(failed)?;
    store::workspaces::mark_removed(&mut *tx, &all)
        .await
        .context(failed)?;
    store::layouts::delete_for(&mut *tx, &all)
        .await
        .context(failed)?;
    store::tokens::revoke_for_workspaces(&mut *tx, &all)
        .await
        .context(failed)?;
    for descendant in &descendants {
        store::events::record(&mut *tx, "WORKSPACE_REMOVED", Some(*descendant), &json!({}))
            .await
            .context(failed)?;
    }
    let cascade = json!({ "cascade_deleted": descendants.len() });
    store::events::record(&mut *tx, "WORKSPACE_REMOVED", Some(id), &cascade)
        .await
        .context(failed)?;
    if purge {
        store::workspaces::purge(&mut tx, &all)
            .await
            .context(failed)?;
    }
    tx.commit().await.context(failed)?;
    Ok((descendants, local))
}
