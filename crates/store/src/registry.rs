//! The agents' writes to `workspaces` (registration, heartbeats, agent cards, status transitions)
//! and the reads of the registry routes (hierarchy access, peers, discovery).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;
use crate::workspace_status::WorkspaceStatus;

/// How far up a parent chain the access check walks (a corrupt cycle cannot loop forever).
pub const MAX_ANCESTOR_WALK: i32 = 32;

/// Marks a registered agent online with its URL, card and delivery mode; `None` when the
/// workspace does not exist or is removed (a late registration never resurrects a removed
/// workspace). Returns the URL now stored (`""` when none): a provisioner-set
/// `http://127.0.0.1…` URL is kept over the agent's own.
pub async fn register(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    url: &str,
    agent_card: &serde_json::Value,
    delivery_mode: &str,
) -> Result<Option<String>, StoreError> {
    let stored_url = sqlx::query_scalar!(
        r#"UPDATE workspaces SET
             url = CASE WHEN url LIKE 'http://127.0.0.1%' THEN url ELSE NULLIF($2, '') END,
             agent_card = $3,
             delivery_mode = $4,
             status = 'online',
             last_heartbeat_at = now(),
             updated_at = now()
           WHERE id = $1 AND status <> 'removed'
           RETURNING COALESCE(url, '') AS "url!""#,
        workspace_id,
        url,
        agent_card,
        delivery_mode
    )
    .fetch_optional(executor)
    .await?;
    Ok(stored_url)
}

/// The delivery mode a workspace has now; `None` when it does not exist.
pub async fn delivery_mode(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let mode = sqlx::query_scalar!(
        "SELECT delivery_mode FROM workspaces WHERE id = $1",
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(mode)
}

/// What an agent reports on each heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat<'a> {
    pub workspace_id: Uuid,
    pub error_rate: f64,
    pub sample_error: &'a str,
    pub active_tasks: i32,
    pub uptime_seconds: i32,
    pub current_task: &'a str,
    /// Cumulative spend of the month in cents; `0` leaves the stored value alone.
    pub monthly_spend: i64,
}

/// The workspace as a heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// `current_task` before this heartbeat (`""` when none).
    pub previous_task: String,
    /// The status now (a heartbeat itself never changes it; see [`transition_status`]).
    pub status: WorkspaceStatus,
}

/// Stores a heartbeat; `None` when the workspace does not exist or is removed.
pub async fn heartbeat(
    executor: impl PgExecutor<'_>,
    beat: &Heartbeat<'_>,
) -> Result<Option<HeartbeatOutcome>, StoreError> {
    let row = sqlx::query!(
        r#"WITH previous AS (
             SELECT id, COALESCE(current_task, '') AS task FROM workspaces
             WHERE id = $1 AND status <> 'removed'
             FOR UPDATE
           )
           UPDATE workspaces w SET
             last_heartbeat_at = now(),
             last_error_rate = $2,
             last_sample_error = $3,
             active_tasks = $4,
             uptime_seconds = $5,
             current_task = $6,
             monthly_spend = CASE WHEN $7::bigint > 0 THEN $7 ELSE w.monthly_spend END,
             updated_at = now()
           FROM previous WHERE w.id = previous.id
           RETURNING previous.task AS "previous_task!", w.status::text AS "status!""#,
        beat.workspace_id,
        beat.error_rate,
        beat.sample_error,
        beat.active_tasks,
        beat.uptime_seconds,
        beat.current_task,
        beat.monthly_spend
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| HeartbeatOutcome {
        previous_task: r.previous_task,
        status: WorkspaceStatus::from_column(&r.status),
    }))
}

/// Moves a workspace from status `from` to `to` only if it is still in `from`, so a transition
/// never overwrites a concurrent one (a delete racing a heartbeat stays removed). Returns whether
/// it moved.
pub async fn transition_status(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    from: WorkspaceStatus,
    to: WorkspaceStatus,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = $3::text::workspace_status, updated_at = now()
         WHERE id = $1 AND status::text = $2",
        workspace_id,
        from.as_str(),
        to.as_str()
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the agent card; `false` when the workspace does not exist or is removed.
pub async fn update_card(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    agent_card: &serde_json::Value,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET agent_card = $2, updated_at = now()
         WHERE id = $1 AND status <> 'removed'",
        workspace_id,
        agent_card
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A live workspace whose agent stopped sending heartbeats.
#[derive(Debug, Clone, PartialEq)]
pub struct WentOffline {
    pub workspace_id: Uuid,
    pub previous_status: String,
}

/// Marks `offline` every online or degraded workspace whose last heartbeat is older than
/// `ttl_seconds`, and returns them (one statement, so replicas running the same loop never
/// report a workspace twice).
pub async fn mark_stale_offline(
    executor: impl PgExecutor<'_>,
    ttl_seconds: f64,
) -> Result<Vec<WentOffline>, StoreError> {
    let rows = sqlx::query!(
        r#"WITH stale AS (
             SELECT id, status::text AS previous_status FROM workspaces
             WHERE status IN ('online', 'degraded')
               AND last_heartbeat_at < now() - make_interval(secs => $1)
             FOR UPDATE SKIP LOCKED
           )
           UPDATE workspaces w SET status = 'offline', updated_at = now()
           FROM stale WHERE w.id = stale.id
           RETURNING w.id, stale.previous_status AS "previous_status!""#,
        ttl_seconds
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| WentOffline {
            workspace_id: r.id,
            previous_status: r.previous_status,
        })
        .collect())
}

/// The original's hierarchy rule (`registry.CanCommunicate`): a workspace may reach itself, its
/// siblings (same parent, or both at the root), and any ancestor or descendant. Unknown
/// workspaces reach nothing.
pub async fn can_communicate(
    executor: impl PgExecutor<'_>,
    caller: Uuid,
    target: Uuid,
) -> Result<bool, StoreError> {
    if caller == target {
        return Ok(true);
    }
    let allowed = sqlx::query_scalar!(
        r#"WITH RECURSIVE
             caller AS (SELECT id, parent_id FROM workspaces WHERE id = $1),
             target AS (SELECT id, parent_id FROM workspaces WHERE id = $2),
             caller_up (id, depth) AS (
               SELECT parent_id, 1 FROM caller WHERE parent_id IS NOT NULL
               UNION ALL
               SELECT w.parent_id, up.depth + 1 FROM workspaces w JOIN caller_up up ON w.id = up.id
               WHERE w.parent_id IS NOT NULL AND up.depth < $3
             ),
             target_up (id, depth) AS (
               SELECT parent_id, 1 FROM target WHERE parent_id IS NOT NULL
               UNION ALL
               SELECT w.parent_id, up.depth + 1 FROM workspaces w JOIN target_up up ON w.id = up.id
               WHERE w.parent_id IS NOT NULL AND up.depth < $3
             )
           SELECT EXISTS (
             SELECT 1 FROM caller, target
             WHERE caller.parent_id IS NOT DISTINCT FROM target.parent_id
                OR caller.id IN (SELECT id FROM target_up)
                OR target.id IN (SELECT id FROM caller_up)
           ) AS "allowed!""#,
        caller,
        target,
        MAX_ANCESTOR_WALK
    )
    .fetch_one(executor)
    .await?;
    Ok(allowed)
}

/// A peer as `GET /registry/{id}/peers` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    pub id: Uuid,
    pub name: String,
    pub role: Option<String>,
    pub tier: i32,
    pub status: String,
    pub agent_card: Option<serde_json::Value>,
    pub url: String,
    pub parent_id: Option<Uuid>,
    pub active_tasks: i32,
}

/// The live peers of a workspace: its siblings (root workspaces are siblings of each other),
/// then its children, then its parent. `None` when the workspace does not exist.
pub async fn peers<'c>(
    executor: impl PgExecutor<'c> + Copy,
    workspace_id: Uuid,
) -> Result<Option<Vec<PeerRow>>, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1) AS "exists!""#,
        workspace_id
    )
    .fetch_one(executor)
    .await?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query_as!(
        PeerRow,
        r#"WITH me AS (SELECT id, parent_id FROM workspaces WHERE id = $1),
           peer AS (
             SELECT w.*, 0 AS rank FROM workspaces w, me
             WHERE w.id <> me.id
               AND ((me.parent_id IS NULL AND w.parent_id IS NULL) OR w.parent_id = me.parent_id)
             UNION ALL
             SELECT w.*, 1 FROM workspaces w, me WHERE w.parent_id = me.id
             UNION ALL
             SELECT w.*, 2 FROM workspaces w, me WHERE w.id = me.parent_id
           )
           SELECT id AS "id!", name AS "name!", NULLIF(role, '') AS role,
                  COALESCE(tier, 1) AS "tier!", status::text AS "status!",
                  NULLIF(agent_card, 'null'::jsonb) AS agent_card,
                  COALESCE(url, '') AS "url!", parent_id,
                  COALESCE(active_tasks, 0) AS "active_tasks!"
           FROM peer
           WHERE status <> 'removed'
           ORDER BY rank, created_at, id"#,
        workspace_id
    )
    .fetch_all(executor)
    .await?;
    Ok(Some(rows))
}

/// What discovery needs to know about a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryRow {
    pub id: Uuid,
    pub name: String,
    pub runtime: String,
    pub status: String,
    pub url: Option<String>,
}

/// The discovery view of one workspace (removed ones included; the caller decides).
pub async fn discovery_row(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<DiscoveryRow>, StoreError> {
    let row = sqlx::query_as!(
        DiscoveryRow,
        r#"SELECT id, name, COALESCE(runtime, 'langgraph') AS "runtime!",
                  COALESCE(status::text, 'provisioning') AS "status!", NULLIF(url, '') AS url
           FROM workspaces WHERE id = $1"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}
