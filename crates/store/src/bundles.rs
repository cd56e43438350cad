//! What bundle export reads and bundle import writes beyond a plain workspace row.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The columns of a workspace a bundle carries.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleNode {
    pub name: String,
    pub role: String,
    pub tier: i32,
    pub agent_card: Option<serde_json::Value>,
}

/// One workspace in any status (the original exported removed ones too); `None` when absent.
pub async fn node(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<BundleNode>, StoreError> {
    let row = sqlx::query_as!(
        BundleNode,
        r#"SELECT name, COALESCE(role, '') AS "role!", COALESCE(tier, 0) AS "tier!", agent_card
           FROM workspaces WHERE id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Records which bundle (the exported workspace's id) a workspace was imported from.
pub async fn set_source_bundle_id(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    source: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE workspaces SET source_bundle_id = $2 WHERE id = $1",
        id,
        source
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The names of the live workspaces under `parent` (top level when `None`) that are `base` or
/// start with `base (copy`: the candidates a fresh unique name must avoid.
pub async fn sibling_names_like(
    executor: impl PgExecutor<'_>,
    parent: Option<Uuid>,
    base: &str,
) -> Result<Vec<String>, StoreError> {
    let names = sqlx::query_scalar!(
        "SELECT name FROM workspaces
         WHERE parent_id IS NOT DISTINCT FROM $1 AND status IS DISTINCT FROM 'removed'
           AND (name = $2 OR starts_with(name, $2 || ' (copy'))",
        parent,
        base
    )
    .fetch_all(executor)
    .await?;
    Ok(names)
}
