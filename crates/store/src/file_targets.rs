//! Where a workspace's files live: the one lookup the files API makes before dispatching.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The columns that decide a files request's backend and remote directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTarget {
    pub name: String,
    /// The EC2 instance holding the files; empty when the files are local.
    pub instance_id: String,
    /// Selects the managed-config directory on an instance (`claude-code`, `hermes`, …).
    pub runtime: String,
}

/// Loads the dispatch columns of a workspace in one round trip; `None` when no row has this id.
pub async fn lookup(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<FileTarget>, StoreError> {
    let row = sqlx::query!(
        r#"SELECT name, COALESCE(instance_id, '') AS "instance_id!", COALESCE(runtime, '') AS "runtime!"
           FROM workspaces WHERE id = $1"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| FileTarget {
        name: r.name,
        instance_id: r.instance_id,
        runtime: r.runtime,
    }))
}

/// Of `ids`, the workspaces whose files are local (no EC2 instance).
pub async fn local_among(
    executor: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, StoreError> {
    let local = sqlx::query_scalar!(
        "SELECT id FROM workspaces WHERE id = ANY($1) AND COALESCE(instance_id, '') = ''",
        ids
    )
    .fetch_all(executor)
    .await?;
    Ok(local)
}
