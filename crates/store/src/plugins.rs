//! Plugins: the org allowlist (`org_plugin_allowlist`) and the workspace columns the plugin
//! routes read.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::StoreError;

/// One allowed plugin of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPlugin {
    pub plugin_name: String,
    pub enabled_by: String,
    pub enabled_at: DateTime<Utc>,
}

/// Whether a workspace row (any status) has this id: an "org" is a workspace.
pub async fn org_exists(executor: impl PgExecutor<'_>, org_id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS(SELECT 1 FROM workspaces WHERE id = $1) AS "exists!""#,
        org_id
    )
    .fetch_one(executor)
    .await?)
}

/// The org's allowlist, ordered by name.
pub async fn allowlist(
    executor: impl PgExecutor<'_>,
    org_id: Uuid,
) -> Result<Vec<AllowedPlugin>, StoreError> {
    Ok(sqlx::query_as!(
        AllowedPlugin,
        "SELECT plugin_name, enabled_by, enabled_at FROM org_plugin_allowlist
         WHERE org_id = $1 ORDER BY plugin_name",
        org_id
    )
    .fetch_all(executor)
    .await?)
}

/// Replaces the org's allowlist with `names` (duplicates collapse), in the caller's transaction.
pub async fn replace_allowlist(
    conn: &mut PgConnection,
    org_id: Uuid,
    names: &[String],
    enabled_by: &str,
) -> Result<(), StoreError> {
    sqlx::query!("DELETE FROM org_plugin_allowlist WHERE org_id = $1", org_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO org_plugin_allowlist (org_id, plugin_name, enabled_by)
         SELECT $1, name, $3 FROM UNNEST($2::text[]) AS name
         ON CONFLICT (org_id, plugin_name) DO NOTHING",
        org_id,
        names,
        enabled_by
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The org governing a workspace's installs: the root of its tree (the workspace itself when it
/// has no parent). `None` when the workspace does not exist.
pub async fn org_of(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"WITH RECURSIVE up(id, parent_id, depth) AS (
               SELECT id, parent_id, 0 FROM workspaces WHERE id = $1
               UNION ALL
               SELECT w.id, w.parent_id, up.depth + 1 FROM workspaces w
               JOIN up ON w.id = up.parent_id
               WHERE up.depth < 64
           )
           SELECT id AS "id!" FROM up ORDER BY depth DESC LIMIT 1"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?)
}

/// Whether `plugin` may be installed under `org_id`: on its list, or the list is empty.
pub async fn allows(
    executor: impl PgExecutor<'_>,
    org_id: Uuid,
    plugin: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT NOT EXISTS(SELECT 1 FROM org_plugin_allowlist WHERE org_id = $1)
                  OR EXISTS(SELECT 1 FROM org_plugin_allowlist
                            WHERE org_id = $1 AND plugin_name = $2) AS "allowed!""#,
        org_id,
        plugin
    )
    .fetch_one(executor)
    .await?)
}

/// The workspace's runtime (`langgraph` when unset, as the original); `None` when no row.
pub async fn runtime(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT COALESCE(NULLIF(runtime, ''), 'langgraph') AS "runtime!" FROM workspaces WHERE id = $1"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?)
}
