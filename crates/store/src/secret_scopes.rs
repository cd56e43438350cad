//! Secrets across their two scopes: `global_secrets` (every workspace) and `workspace_secrets`
//! (one workspace, overriding a global key of the same name). Values are encrypted with
//! [`Crypto`]; listings never read them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::crypto::Crypto;
use crate::{Db, StoreError};

/// Where a key's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Workspace,
    Global,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Workspace => "workspace",
            Scope::Global => "global",
        }
    }
}

/// One key of a listing (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub key: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored value, still sealed.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub key: String,
    pub scope: Scope,
    pub encrypted_value: Vec<u8>,
    pub encryption_version: i32,
}

/// The workspace's own keys by key, then the global keys it does not override, by key (the
/// original's order, `handlers/secrets.go:42-93` at 624ef4d0). Rows with a NULL time are skipped,
/// as the original's scan skipped them.
pub async fn list_merged(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Vec<SecretKey>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT key AS "key!", scope AS "scope!", created_at AS "created_at!", updated_at AS "updated_at!"
           FROM (
             SELECT key, 0 AS rank, 'workspace' AS scope, created_at, updated_at
             FROM workspace_secrets
             WHERE workspace_id = $1 AND created_at IS NOT NULL AND updated_at IS NOT NULL
             UNION ALL
             SELECT g.key, 1, 'global', g.created_at, g.updated_at
             FROM global_secrets g
             WHERE NOT EXISTS (SELECT 1 FROM workspace_secrets w
                               WHERE w.workspace_id = $1 AND w.key = g.key)
           ) merged
           ORDER BY rank, key"#,
        workspace_id
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SecretKey {
            scope: scope_of(&r.scope),
            key: r.key,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

/// Every global key, by key.
pub async fn list_global(executor: impl PgExecutor<'_>) -> Result<Vec<SecretKey>, StoreError> {
    let rows = sqlx::query!("SELECT key, created_at, updated_at FROM global_secrets ORDER BY key")
        .fetch_all(executor)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| SecretKey {
            key: r.key,
            scope: Scope::Global,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

/// The sealed values a workspace resolves: every global row first, then the workspace's rows
/// (a later row of the same key overrides an earlier one), each in row order. Concurrent reads
/// share a statement ([`crate::batch`]).
pub async fn sealed_for_workspace(
    db: &Db,
    workspace_id: Uuid,
) -> Result<Vec<SealedSecret>, StoreError> {
    let statement_db = db.clone();
    let sealed = db
        .shared()
        .sealed_secrets
        .get(workspace_id, move |workspaces| async move {
            query_sealed(&statement_db, workspaces).await
        })
        .await?;
    Ok(sealed.unwrap_or_default())
}

/// One sealed row of [`query_sealed`]: a global one (`workspace_id` NULL) or a workspace's.
struct SealedRow {
    workspace_id: Option<Uuid>,
    key: String,
    encrypted_value: Vec<u8>,
    encryption_version: i32,
}

/// [`sealed_for_workspace`] of every workspace in `workspaces`, in one statement; for one
/// workspace, with a scalar parameter (an array one makes PostgreSQL plan every execution anew:
/// see `tokens::query_bearers`).
async fn query_sealed(
    executor: impl PgExecutor<'_>,
    workspaces: Vec<Uuid>,
) -> Result<HashMap<Uuid, Vec<SealedSecret>>, StoreError> {
    let rows = if let [workspace] = workspaces.as_slice() {
        sqlx::query_as!(
            SealedRow,
            r#"SELECT workspace_id, key AS "key!", encrypted_value AS "encrypted_value!",
                      encryption_version AS "encryption_version!"
               FROM (
                 SELECT NULL::uuid AS workspace_id, key, 0 AS rank, encrypted_value,
                        encryption_version, created_at
                 FROM global_secrets
                 UNION ALL
                 SELECT workspace_id, key, 1, encrypted_value, encryption_version, created_at
                 FROM workspace_secrets WHERE workspace_id = $1
               ) sealed
               ORDER BY rank, created_at, key"#,
            workspace
        )
        .fetch_all(executor)
        .await?
    } else {
        sqlx::query_as!(
            SealedRow,
            r#"SELECT workspace_id, key AS "key!", encrypted_value AS "encrypted_value!",
                      encryption_version AS "encryption_version!"
               FROM (
                 SELECT NULL::uuid AS workspace_id, key, 0 AS rank, encrypted_value,
                        encryption_version, created_at
                 FROM global_secrets
                 UNION ALL
                 SELECT workspace_id, key, 1, encrypted_value, encryption_version, created_at
                 FROM workspace_secrets WHERE workspace_id = ANY($1)
               ) sealed
               ORDER BY rank, created_at, key"#,
            &workspaces
        )
        .fetch_all(executor)
        .await?
    };
    let mut globals = Vec::new();
    let mut own: HashMap<Uuid, Vec<SealedSecret>> = HashMap::new();
    for row in rows {
        let (scope, list) = match row.workspace_id {
            None => (Scope::Global, &mut globals),
            Some(workspace) => (Scope::Workspace, own.entry(workspace).or_default()),
        };
        list.push(SealedSecret {
            scope,
            key: row.key,
            encrypted_value: row.encrypted_value,
            encryption_version: row.encryption_version,
        });
    }
    Ok(workspaces
        .into_iter()
        .map(|workspace| {
            let mut sealed = globals.clone();
            sealed.extend(own.remove(&workspace).unwrap_or_default());
            (workspace, sealed)
        })
        .collect())
}

/// Encrypts and upserts one global secret.
pub async fn upsert_global(
    executor: impl PgExecutor<'_>,
    crypto: &Crypto,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    let (encrypted, version) = crypto.encrypt(value.as_bytes())?;
    sqlx::query!(
        "INSERT INTO global_secrets (key, encrypted_value, encryption_version)
         VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE
           SET encrypted_value = EXCLUDED.encrypted_value,
               encryption_version = EXCLUDED.encryption_version,
               updated_at = now()",
        key,
        encrypted,
        version
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes one global secret; returns whether it existed.
pub async fn delete_global(executor: impl PgExecutor<'_>, key: &str) -> Result<bool, StoreError> {
    let done = sqlx::query!("DELETE FROM global_secrets WHERE key = $1", key)
        .execute(executor)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The workspaces a change of the global `key` reaches: not removed or paused, not external,
/// and without their own value for `key` (`handlers/secrets.go:377-410` at 624ef4d0).
pub async fn inheriting_workspaces(
    executor: impl PgExecutor<'_>,
    key: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let ids = sqlx::query_scalar!(
        r#"SELECT w.id FROM workspaces w
           WHERE w.status IS DISTINCT FROM 'removed' AND w.status IS DISTINCT FROM 'paused'
             AND COALESCE(w.runtime, '') <> 'external'
             AND NOT EXISTS (SELECT 1 FROM workspace_secrets s
                             WHERE s.workspace_id = w.id AND s.key = $1)
           ORDER BY w.id"#,
        key
    )
    .fetch_all(executor)
    .await?;
    Ok(ids)
}

/// A workspace that resolves a key, and the scope its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    pub id: Uuid,
    pub name: String,
    pub scope: Scope,
}

/// The live workspaces that resolve `key` (their own value first, else the global one), by name;
/// `only` restricts the answer to one workspace.
pub async fn dependents(
    executor: impl PgExecutor<'_>,
    key: &str,
    only: Option<Uuid>,
) -> Result<Vec<Dependent>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT w.id, w.name,
                  CASE WHEN EXISTS (SELECT 1 FROM workspace_secrets s
                                    WHERE s.workspace_id = w.id AND s.key = $1)
                       THEN 'workspace' ELSE 'global' END AS "scope!"
           FROM workspaces w
           WHERE w.status IS DISTINCT FROM 'removed'
             AND ($2::uuid IS NULL OR w.id = $2)
             AND (EXISTS (SELECT 1 FROM workspace_secrets s WHERE s.workspace_id = w.id AND s.key = $1)
                  OR EXISTS (SELECT 1 FROM global_secrets g WHERE g.key = $1))
           ORDER BY w.name, w.id"#,
        key,
        only
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Dependent {
            id: r.id,
            name: r.name,
            scope: scope_of(&r.scope),
        })
        .collect())
}

fn scope_of(text: &str) -> Scope {
    if text == "workspace" {
        Scope::Workspace
    } else {
        Scope::Global
    }
}
