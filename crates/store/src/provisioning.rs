//! The provisioning lifecycle's statements: what a provision needs of a row, the status
//! transitions of restart, pause, resume, hibernate and failure, and the timeout sweep's query.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// What a provision needs of a workspace row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionTarget {
    pub id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub runtime: String,
    pub parent_id: Option<Uuid>,
    pub status: String,
    pub instance_id: Option<String>,
    pub active_tasks: i32,
}

/// The row of one workspace as a provision sees it; `None` when no row has this id.
pub async fn target(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<ProvisionTarget>, StoreError> {
    let row = sqlx::query_as!(
        ProvisionTarget,
        r#"SELECT id, name, role, COALESCE(tier, 0) AS "tier!",
                  COALESCE(runtime, 'langgraph') AS "runtime!", parent_id,
                  COALESCE(status::text, '') AS "status!", instance_id,
                  COALESCE(active_tasks, 0) AS "active_tasks!"
           FROM workspaces WHERE id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Sets `provisioning` and clears the URL, unless the workspace was removed. Returns whether it
/// changed.
pub async fn begin_provisioning(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = 'provisioning', url = '', updated_at = now()
         WHERE id = $1 AND status IS DISTINCT FROM 'removed'",
        id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Stores the instance a provision returned, unless the workspace was removed meanwhile.
/// Returns whether it was stored (`false`: the caller stops the orphan instance).
pub async fn attach_instance(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    instance_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET instance_id = $2, updated_at = now()
         WHERE id = $1 AND status IS DISTINCT FROM 'removed'",
        id,
        instance_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The instance of a workspace, if it has one.
pub async fn instance_id(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    let instance = sqlx::query_scalar!("SELECT instance_id FROM workspaces WHERE id = $1", id)
        .fetch_optional(executor)
        .await?;
    Ok(instance.flatten().filter(|i| !i.is_empty()))
}

/// Marks a workspace `failed` with `message`: any live row when `only_provisioning` is false, only
/// a `provisioning` row otherwise. Returns whether a row changed.
pub async fn mark_failed(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    message: &str,
    only_provisioning: bool,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = 'failed', last_sample_error = $2, updated_at = now()
         WHERE id = $1 AND status IS DISTINCT FROM 'removed'
           AND (NOT $3 OR status = 'provisioning')",
        id,
        message,
        only_provisioning
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The name of the nearest paused ancestor of a workspace, if any.
pub async fn paused_ancestor(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<String>, StoreError> {
    let name = sqlx::query_scalar!(
        r#"WITH RECURSIVE up AS (
             SELECT parent_id, 0 AS depth FROM workspaces WHERE id = $1
             UNION ALL
             SELECT w.parent_id, up.depth + 1 FROM workspaces w JOIN up ON w.id = up.parent_id
             WHERE up.depth < 64
           )
           SELECT w.name AS "name!" FROM up JOIN workspaces w ON w.id = up.parent_id
           WHERE w.status = 'paused' ORDER BY up.depth LIMIT 1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(name)
}

/// A workspace of a pause or resume subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtreeMember {
    pub id: Uuid,
    pub name: String,
    pub tier: i32,
    pub runtime: String,
}

/// The workspace and its descendants, root first, following only rows whose status is (when
/// `paused` is true) or is not (when false) `paused`; removed rows are never followed.
pub async fn subtree(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    paused: bool,
) -> Result<Vec<SubtreeMember>, StoreError> {
    let rows = sqlx::query_as!(
        SubtreeMember,
        r#"WITH RECURSIVE tree AS (
             SELECT id, 0 AS depth FROM workspaces
             WHERE id = $1 AND status IS DISTINCT FROM 'removed'
               AND ((status = 'paused') IS NOT DISTINCT FROM $2)
             UNION
             SELECT w.id, t.depth + 1 FROM workspaces w JOIN tree t ON w.parent_id = t.id
             WHERE w.status IS DISTINCT FROM 'removed'
               AND ((w.status = 'paused') IS NOT DISTINCT FROM $2)
           )
           SELECT w.id AS "id!", w.name AS "name!", COALESCE(w.tier, 0) AS "tier!",
                  COALESCE(w.runtime, 'langgraph') AS "runtime!"
           FROM tree t JOIN workspaces w ON w.id = t.id
           ORDER BY t.depth, w.created_at, w.id"#,
        id,
        paused
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Sets a workspace `paused` (or `hibernated`) with no URL.
pub async fn set_stopped(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE workspaces SET status = ($2::text)::workspace_status, url = '', updated_at = now()
         WHERE id = $1 AND status IS DISTINCT FROM 'removed'",
        id,
        status
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Claims an online or degraded workspace for hibernation (`hibernating`); with `force`, even
/// while tasks are active. Returns whether it was claimed.
pub async fn claim_hibernation(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    force: bool,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = 'hibernating', updated_at = now()
         WHERE id = $1 AND status IN ('online', 'degraded')
           AND ($2 OR COALESCE(active_tasks, 0) = 0)",
        id,
        force
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A workspace in `provisioning`, with how long since its row last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioning {
    pub id: Uuid,
    pub runtime: String,
    pub age_seconds: f64,
}

/// Every workspace in `provisioning`, with its age measured from `updated_at`.
pub async fn provisioning(executor: impl PgExecutor<'_>) -> Result<Vec<Provisioning>, StoreError> {
    let rows = sqlx::query_as!(
        Provisioning,
        r#"SELECT id, COALESCE(runtime, 'langgraph') AS "runtime!",
                  EXTRACT(EPOCH FROM (now() - COALESCE(updated_at, created_at)))::float8 AS "age_seconds!"
           FROM workspaces WHERE status = 'provisioning'"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Fails a workspace still `provisioning` and still older than `timeout_seconds`. Returns whether
/// it changed (another replica or a register may have got there first).
pub async fn time_out(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    timeout_seconds: f64,
    message: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = 'failed', last_sample_error = $3, updated_at = now()
         WHERE id = $1 AND status = 'provisioning'
           AND COALESCE(updated_at, created_at) < now() - make_interval(secs => $2)",
        id,
        timeout_seconds,
        message
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A workspace's instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub workspace_id: Uuid,
    pub instance_id: String,
}

/// The instances of a workspace and its live descendants (read before a delete removes them).
pub async fn instances_in_tree(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Vec<Instance>, StoreError> {
    let rows = sqlx::query_as!(
        Instance,
        r#"WITH RECURSIVE tree AS (
             SELECT id FROM workspaces WHERE id = $1
             UNION
             SELECT w.id FROM workspaces w JOIN tree t ON w.parent_id = t.id
             WHERE w.status IS DISTINCT FROM 'removed'
           )
           SELECT w.id AS "workspace_id!", w.instance_id AS "instance_id!"
           FROM tree t JOIN workspaces w ON w.id = t.id
           WHERE w.instance_id IS NOT NULL AND w.instance_id <> ''"#,
        id
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// The instances of `online` and `degraded` provisioned workspaces (the liveness check's list).
pub async fn live_instances(executor: impl PgExecutor<'_>) -> Result<Vec<Instance>, StoreError> {
    let rows = sqlx::query_as!(
        Instance,
        r#"SELECT id AS "workspace_id!", instance_id AS "instance_id!" FROM workspaces
           WHERE status IN ('online', 'degraded') AND instance_id IS NOT NULL
             AND instance_id <> '' AND runtime IS DISTINCT FROM 'external'"#
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Sets an `online` or `degraded` workspace `offline`; whether it changed.
pub async fn mark_offline(executor: impl PgExecutor<'_>, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = 'offline', updated_at = now()
         WHERE id = $1 AND status IN ('online', 'degraded')",
        id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}
