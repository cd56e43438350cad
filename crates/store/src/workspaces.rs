//! `workspaces`: create, read, patch, soft-delete (cascade) and purge.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

pub use crate::workspace_status::WorkspaceStatus;
use crate::{Db, StoreError};

/// The index that keeps live sibling names unique.
const SIBLING_NAME_INDEX: &str = "workspaces_parent_name_uniq";
/// The foreign key from `parent_id` to `workspaces(id)`.
const PARENT_FOREIGN_KEY: &str = "workspaces_parent_id_fkey";

/// A workspace with its canvas layout: the columns the metadata API projects. NULLs are already
/// folded the way the original's projection folds them.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub status: String,
    pub agent_card: Option<serde_json::Value>,
    pub url: String,
    pub parent_id: Option<Uuid>,
    pub active_tasks: i32,
    pub max_concurrent_tasks: i32,
    pub last_error_rate: f64,
    pub last_sample_error: String,
    pub uptime_seconds: i32,
    pub current_task: String,
    pub runtime: String,
    pub workspace_dir: Option<String>,
    pub x: f64,
    pub y: f64,
    pub collapsed: bool,
    pub budget_limit: Option<i64>,
    pub monthly_spend: i64,
    pub last_outbound_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Every live (not removed) workspace, oldest first.
pub async fn list_live(executor: impl PgExecutor<'_>) -> Result<Vec<WorkspaceRow>, StoreError> {
    let rows = sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.id, w.name, w.role, COALESCE(w.tier, 0) AS "tier!",
                  COALESCE(w.status::text, '') AS "status!", w.agent_card,
                  COALESCE(w.url, '') AS "url!", w.parent_id,
                  COALESCE(w.active_tasks, 0) AS "active_tasks!",
                  w.max_concurrent_tasks,
                  COALESCE(w.last_error_rate, 0) AS "last_error_rate!",
                  COALESCE(w.last_sample_error, '') AS "last_sample_error!",
                  COALESCE(w.uptime_seconds, 0) AS "uptime_seconds!",
                  COALESCE(w.current_task, '') AS "current_task!",
                  COALESCE(w.runtime, 'langgraph') AS "runtime!", w.workspace_dir,
                  COALESCE(l.x, 0) AS "x!", COALESCE(l.y, 0) AS "y!",
                  COALESCE(l.collapsed, false) AS "collapsed!",
                  w.budget_limit, w.monthly_spend, w.last_outbound_at, w.updated_at
           FROM workspaces w LEFT JOIN canvas_layouts l ON l.workspace_id = w.id
           WHERE w.status IS DISTINCT FROM 'removed'
           ORDER BY w.created_at ASC, w.id"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// [`get`] for a request path: concurrent reads of workspaces share a statement
/// ([`crate::batch`]): [`get_many`], or [`get`] for a batch of one (a scalar parameter, whose
/// plan PostgreSQL keeps; an array one makes it plan every execution anew).
pub async fn get_shared(db: &Db, id: Uuid) -> Result<Option<WorkspaceRow>, StoreError> {
    let statement_db = db.clone();
    db.shared()
        .workspace
        .get(id, move |ids| async move {
            let rows = match ids.as_slice() {
                [id] => get(&statement_db, *id).await?.into_iter().collect(),
                _ => get_many(&statement_db, &ids).await?,
            };
            Ok(rows.into_iter().map(|row| (row.id, row)).collect())
        })
        .await
}

/// One workspace in any status, removed included.
pub async fn get(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<WorkspaceRow>, StoreError> {
    let row = sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.id, w.name, w.role, COALESCE(w.tier, 0) AS "tier!",
                  COALESCE(w.status::text, '') AS "status!", w.agent_card,
                  COALESCE(w.url, '') AS "url!", w.parent_id,
                  COALESCE(w.active_tasks, 0) AS "active_tasks!",
                  w.max_concurrent_tasks,
                  COALESCE(w.last_error_rate, 0) AS "last_error_rate!",
                  COALESCE(w.last_sample_error, '') AS "last_sample_error!",
                  COALESCE(w.uptime_seconds, 0) AS "uptime_seconds!",
                  COALESCE(w.current_task, '') AS "current_task!",
                  COALESCE(w.runtime, 'langgraph') AS "runtime!", w.workspace_dir,
                  COALESCE(l.x, 0) AS "x!", COALESCE(l.y, 0) AS "y!",
                  COALESCE(l.collapsed, false) AS "collapsed!",
                  w.budget_limit, w.monthly_spend, w.last_outbound_at, w.updated_at
           FROM workspaces w LEFT JOIN canvas_layouts l ON l.workspace_id = w.id
           WHERE w.id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// The workspaces of `ids` that exist, in any status, in no particular order. (The `!`s restate
/// `NOT NULL` columns that sqlx cannot infer through `= ANY`.)
pub async fn get_many(
    executor: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<WorkspaceRow>, StoreError> {
    let rows = sqlx::query_as!(
        WorkspaceRow,
        r#"SELECT w.id AS "id!", w.name AS "name!", w.role, COALESCE(w.tier, 0) AS "tier!",
                  COALESCE(w.status::text, '') AS "status!", w.agent_card,
                  COALESCE(w.url, '') AS "url!", w.parent_id,
                  COALESCE(w.active_tasks, 0) AS "active_tasks!",
                  w.max_concurrent_tasks AS "max_concurrent_tasks!",
                  COALESCE(w.last_error_rate, 0) AS "last_error_rate!",
                  COALESCE(w.last_sample_error, '') AS "last_sample_error!",
                  COALESCE(w.uptime_seconds, 0) AS "uptime_seconds!",
                  COALESCE(w.current_task, '') AS "current_task!",
                  COALESCE(w.runtime, 'langgraph') AS "runtime!", w.workspace_dir,
                  COALESCE(l.x, 0) AS "x!", COALESCE(l.y, 0) AS "y!",
                  COALESCE(l.collapsed, false) AS "collapsed!",
                  w.budget_limit, w.monthly_spend AS "monthly_spend!", w.last_outbound_at, w.updated_at
           FROM workspaces w LEFT JOIN canvas_layouts l ON l.workspace_id = w.id
           WHERE w.id = ANY($1)"#,
        ids
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// The status of a workspace (`Unset` when the column is NULL); `None` when no row has this id.
pub async fn status(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<WorkspaceStatus>, StoreError> {
    let status = sqlx::query_scalar!(
        r#"SELECT COALESCE(status::text, '') AS "status!" FROM workspaces WHERE id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(status.as_deref().map(WorkspaceStatus::from_column))
}

/// The values of a new workspace row.
#[derive(Debug, Clone)]
pub struct NewWorkspace<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub role: Option<&'a str>,
    pub tier: i32,
    pub runtime: &'a str,
    /// A `workspace_status` value (`provisioning`, `online`, `awaiting_agent`): see
    /// [`WorkspaceStatus::as_str`].
    pub status: &'a str,
    pub url: Option<&'a str>,
    pub parent_id: Option<Uuid>,
    pub workspace_dir: Option<&'a str>,
    pub workspace_access: &'a str,
    pub budget_limit: Option<i64>,
    pub max_concurrent_tasks: i32,
    pub delivery_mode: &'a str,
}

impl NewWorkspace<'_> {
    /// The awareness namespace the original assigns: `workspace:<id>`.
    pub fn awareness_namespace(&self) -> String {
        format!("workspace:{}", self.id)
    }
}

/// Inserts a workspace. A live sibling with the same name gives
/// [`StoreError::DuplicateWorkspaceName`]; a missing or removed parent gives
/// [`StoreError::ParentNotFound`].
pub async fn insert(
    executor: impl PgExecutor<'_>,
    new: &NewWorkspace<'_>,
) -> Result<(), StoreError> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO workspaces (id, name, role, tier, runtime, status, url, parent_id,
                                   workspace_dir, workspace_access, budget_limit,
                                   max_concurrent_tasks, delivery_mode, awareness_namespace)
           SELECT $1, $2, $3, $4, $5, ($6::text)::workspace_status, $7, $8, $9, $10, $11, $12,
                  $13, $14
           WHERE $8::uuid IS NULL
              OR EXISTS (SELECT 1 FROM workspaces p
                         WHERE p.id = $8 AND p.status IS DISTINCT FROM 'removed')
           RETURNING id"#,
        new.id,
        new.name,
        new.role,
        new.tier,
        new.runtime,
        new.status,
        new.url,
        new.parent_id,
        new.workspace_dir,
        new.workspace_access,
        new.budget_limit,
        new.max_concurrent_tasks,
        new.delivery_mode,
        new.awareness_namespace()
    )
    .fetch_optional(executor)
    .await
    .map_err(map_write_error)?;
    match inserted {
        Some(_) => Ok(()),
        None => Err(StoreError::ParentNotFound),
    }
}

/// The keys a PATCH may change. `None` leaves a column alone; for nullable columns
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub role: Option<Option<String>>,
    pub tier: Option<i32>,
    pub parent_id: Option<Option<Uuid>>,
    pub runtime: Option<String>,
    pub workspace_dir: Option<Option<String>>,
}

impl WorkspacePatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.role.is_none()
            && self.tier.is_none()
            && self.parent_id.is_none()
            && self.runtime.is_none()
            && self.workspace_dir.is_none()
    }
}

/// Applies a patch in one statement. [`StoreError::NotFound`] when no row has this id; the
/// sibling-name index and the parent key map as in [`insert`].
pub async fn update(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    patch: &WorkspacePatch,
) -> Result<(), StoreError> {
    if patch.is_empty() {
        return Ok(());
    }
    let done = sqlx::query!(
        r#"UPDATE workspaces SET
             name = COALESCE($2, name),
             role = CASE WHEN $3 THEN $4 ELSE role END,
             tier = COALESCE($5, tier),
             parent_id = CASE WHEN $6 THEN $7 ELSE parent_id END,
             runtime = COALESCE($8, runtime),
             workspace_dir = CASE WHEN $9 THEN $10 ELSE workspace_dir END,
             updated_at = now()
           WHERE id = $1"#,
        id,
        patch.name.as_deref(),
        patch.role.is_some(),
        patch.role.clone().flatten(),
        patch.tier,
        patch.parent_id.is_some(),
        patch.parent_id.flatten(),
        patch.runtime.as_deref(),
        patch.workspace_dir.is_some(),
        patch.workspace_dir.clone().flatten()
    )
    .execute(executor)
    .await
    .map_err(map_write_error)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Sets the status of a workspace.
pub async fn set_status(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE workspaces SET status = ($2::text)::workspace_status, updated_at = now() WHERE id = $1",
        id,
        status
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// A child workspace as the delete confirmation lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub id: Uuid,
    pub name: String,
}

/// The live direct children of a workspace, oldest first.
pub async fn live_children(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Vec<Child>, StoreError> {
    let children = sqlx::query_as!(
        Child,
        "SELECT id, name FROM workspaces
         WHERE parent_id = $1 AND status IS DISTINCT FROM 'removed'
         ORDER BY created_at, id",
        id
    )
    .fetch_all(executor)
    .await?;
    Ok(children)
}

/// Every live descendant of a workspace (children, grandchildren, …), self excluded.
pub async fn live_descendants(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    let ids = sqlx::query_scalar!(
        r#"WITH RECURSIVE tree AS (
             SELECT id FROM workspaces
             WHERE parent_id = $1 AND status IS DISTINCT FROM 'removed'
             UNION
             SELECT w.id FROM workspaces w JOIN tree t ON w.parent_id = t.id
             WHERE w.status IS DISTINCT FROM 'removed'
           )
           SELECT id AS "id!" FROM tree"#,
        id
    )
    .fetch_all(executor)
    .await?;
    Ok(ids)
}

/// Marks workspaces removed (soft delete) and turns their schedules off, so nothing fires at a
/// removed workspace (the original's `handlers/workspace_crud.go:386-392`).
pub async fn mark_removed(executor: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<(), StoreError> {
    sqlx::query!(
        "WITH removed AS (
             UPDATE workspaces SET status = 'removed', updated_at = now() WHERE id = ANY($1)
             RETURNING id)
         UPDATE workspace_schedules SET enabled = false, updated_at = now()
         WHERE workspace_id IN (SELECT id FROM removed)",
        ids
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Hard-deletes workspaces and the rows that depend on them. Run it in a transaction.
///
/// Rows whose foreign key to `workspaces` has an ON DELETE action (layouts, tokens, activity)
/// follow the delete. Those without one (secrets here; an adopted Go database also has `agents`,
/// `approval_requests`, `agent_memories`, …, which the original purged by name in
/// `workspace_crud.go` Delete at 624ef4d0) are deleted first: the tables are found in the
/// catalog, so a table this server never created cannot make the purge fail. References from
/// other workspaces (`parent_id`, `forwarded_to`) are cleared.
pub async fn purge(connection: &mut sqlx::PgConnection, ids: &[Uuid]) -> Result<(), StoreError> {
    for delete in dependent_row_deletes(&mut *connection).await? {
        // The statement is built by `format('%I')` from the catalog, never from input.
        sqlx::query(sqlx::AssertSqlSafe(delete))
            .bind(ids)
            .execute(&mut *connection)
            .await?;
    }
    sqlx::query!(
        "UPDATE workspaces SET parent_id = NULL WHERE parent_id = ANY($1)",
        ids
    )
    .execute(&mut *connection)
    .await?;
    sqlx::query!(
        "UPDATE workspaces SET forwarded_to = NULL WHERE forwarded_to = ANY($1)",
        ids
    )
    .execute(&mut *connection)
    .await?;
    sqlx::query!("DELETE FROM workspaces WHERE id = ANY($1)", ids)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// One `DELETE … WHERE <column> = ANY($1)` per single-column foreign key from another table to
/// `workspaces(id)` that has no ON DELETE action.
async fn dependent_row_deletes(executor: impl PgExecutor<'_>) -> Result<Vec<String>, StoreError> {
    let deletes = sqlx::query_scalar!(
        r#"SELECT format('DELETE FROM %I.%I WHERE %I = ANY($1)', n.nspname, c.relname, a.attname)
              AS "delete!"
           FROM pg_constraint k
           JOIN pg_class c ON c.oid = k.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
           WHERE k.contype = 'f'
             AND k.confrelid = 'workspaces'::regclass
             AND k.conrelid <> 'workspaces'::regclass
             AND cardinality(k.conkey) = 1
             AND k.confdeltype IN ('a', 'r')
           ORDER BY c.relname"#
    )
    .fetch_all(executor)
    .await?;
    Ok(deletes)
}

/// Attaches (or detaches, with `None`) the EC2 instance holding a workspace's files. Returns
/// whether the workspace exists.
pub async fn set_instance_id(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    instance_id: Option<&str>,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET instance_id = $2, updated_at = now() WHERE id = $1",
        id,
        instance_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Maps the constraint violations clients can cause into typed errors (by constraint name,
/// never by message text).
fn map_write_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        match db.constraint() {
            Some(SIBLING_NAME_INDEX) => return StoreError::DuplicateWorkspaceName,
            Some(PARENT_FOREIGN_KEY) => return StoreError::ParentNotFound,
            _ => {}
        }
    }
    StoreError::Database(error)
}
