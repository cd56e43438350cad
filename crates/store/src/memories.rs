//! `agent_memories` (what agents commit and recall, also shown by the canvas's Memory tab) and
//! `workspace_memory` (the per-workspace key-value store with optimistic versions).
//!
//! The Memory tab's namespaces are derived from a row's scope and its writer's place in the
//! workspace tree (the original's `internal/memory/namespace/resolver.go` at 624ef4d0):
//! `LOCAL` rows are `workspace:<writer>`, `TEAM` rows `team:<writer's parent, or the writer if it
//! is a root>`, `GLOBAL` rows `org:<the writer's root>`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// One `agent_memories` row as agents read it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub content: String,
    pub scope: String,
    pub namespace: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// Which rows a v1 search returns (`memories.go:357-418` at 624ef4d0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySearch<'a> {
    /// The caller.
    pub workspace_id: Uuid,
    /// `LOCAL`, `TEAM`, `GLOBAL`; anything else means the caller's own rows of every scope.
    pub scope: &'a str,
    pub namespace: Option<&'a str>,
    pub text: TextQuery<'a>,
    pub limit: i64,
}

/// How the text of a search is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextQuery<'a> {
    None,
    /// A one-byte query: a substring match.
    Substring(&'a str),
    /// Full-text, ranked (`plainto_tsquery('english', …)`).
    FullText(&'a str),
}

impl<'a> TextQuery<'a> {
    /// The original's choice by byte length: two or more full-text, one a substring.
    pub fn from_query(query: &'a str) -> Self {
        match query.len() {
            0 => TextQuery::None,
            1 => TextQuery::Substring(query),
            _ => TextQuery::FullText(query),
        }
    }

    /// The text of a full-text query.
    pub fn full_text(self) -> Option<&'a str> {
        match self {
            TextQuery::FullText(text) => Some(text),
            _ => None,
        }
    }

    fn substring(self) -> Option<&'a str> {
        match self {
            TextQuery::Substring(text) => Some(text),
            _ => None,
        }
    }
}

/// A workspace's parent: `None` when the workspace does not exist, `Some(None)` for a root.
pub async fn parent_of(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<Option<Uuid>>, StoreError> {
    let row = sqlx::query_scalar!(
        "SELECT parent_id FROM workspaces WHERE id = $1",
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Inserts one memory; returns its id.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    content: &str,
    scope: &str,
    namespace: &str,
) -> Result<Uuid, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO agent_memories (workspace_id, content, scope, namespace)
         VALUES ($1, $2, $3, $4) RETURNING id",
        workspace_id,
        content,
        scope,
        namespace
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// A v1 search: full-text matches ranked first, then newest first. A full-text query has a
/// statement of its own so that its match is always a condition the GIN index serves, whatever
/// plan PostgreSQL caches for the prepared statement.
pub async fn search(
    executor: impl PgExecutor<'_>,
    search: &MemorySearch<'_>,
) -> Result<Vec<MemoryRow>, StoreError> {
    if let TextQuery::FullText(text) = search.text {
        return search_full_text(executor, search, text).await;
    }
    let rows = sqlx::query_as!(
        MemoryRow,
        r#"SELECT m.id, m.workspace_id, m.content, m.scope, m.namespace, m.created_at
           FROM agent_memories m
           WHERE CASE $2::text
                   WHEN 'LOCAL' THEN m.workspace_id = $1 AND m.scope = 'LOCAL'
                   -- the caller's team: its parent and the parent's children, or the
                   -- caller and its children when it is a root
                   WHEN 'TEAM' THEN m.scope = 'TEAM' AND m.workspace_id IN (
                                      SELECT w.id FROM workspaces w, workspaces caller
                                      WHERE caller.id = $1 AND w.status <> 'removed'
                                        AND COALESCE(caller.parent_id, caller.id)
                                            IN (w.parent_id, w.id))
                   WHEN 'GLOBAL' THEN m.scope = 'GLOBAL'
                   ELSE m.workspace_id = $1
                 END
             AND ($3::text IS NULL OR m.namespace = $3)
             AND ($4::text IS NULL OR m.content ILIKE '%' || $4 || '%')
           ORDER BY m.created_at DESC
           LIMIT $5"#,
        search.workspace_id,
        search.scope,
        search.namespace,
        search.text.substring(),
        search.limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// The statement of a full-text search (`$1` workspace, `$2` scope, `$3` namespace, `$4` text,
/// `$5` limit), for a benchmark's `EXPLAIN` of exactly what the route runs.
pub const SEARCH_FULL_TEXT_SQL: &str = include_str!("../queries/memories_search_full_text.sql");

async fn search_full_text(
    executor: impl PgExecutor<'_>,
    search: &MemorySearch<'_>,
    text: &str,
) -> Result<Vec<MemoryRow>, StoreError> {
    let rows = sqlx::query_file_as!(
        MemoryRow,
        "queries/memories_search_full_text.sql",
        search.workspace_id,
        search.scope,
        search.namespace,
        text,
        search.limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// One memory of this workspace, or `None` (another owner, or no such row).
pub async fn get_owned(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    workspace_id: Uuid,
) -> Result<Option<MemoryRow>, StoreError> {
    let row = sqlx::query_as!(
        MemoryRow,
        "SELECT id, workspace_id, content, scope, namespace, created_at
         FROM agent_memories WHERE id = $1 AND workspace_id = $2",
        id,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Replaces a memory's content and namespace.
pub async fn update(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    content: &str,
    namespace: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE agent_memories SET content = $2, namespace = $3, updated_at = now() WHERE id = $1",
        id,
        content,
        namespace
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes a memory of this workspace; whether there was one.
pub async fn delete_owned(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    workspace_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM agent_memories WHERE id = $1 AND workspace_id = $2",
        id,
        workspace_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// One workspace of the chain from a workspace up to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub id: Uuid,
    pub name: String,
}

/// The workspace, its parent, …, its root (at most 50 levels up); empty when it does not exist.
pub async fn ancestry(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Vec<ChainLink>, StoreError> {
    let rows = sqlx::query_as!(
        ChainLink,
        r#"WITH RECURSIVE chain AS (
               SELECT id, name, parent_id, 0 AS depth FROM workspaces WHERE id = $1
               UNION ALL
               SELECT w.id, w.name, w.parent_id, c.depth + 1
               FROM workspaces w JOIN chain c ON w.id = c.parent_id
               WHERE c.depth < 50)
           SELECT id AS "id!", name AS "name!" FROM chain ORDER BY depth"#,
        workspace_id
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// The namespaces a Memory-tab listing or delete covers; `None` leaves one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceSet {
    /// `workspace:<id>`: that workspace's LOCAL rows.
    pub workspace: Option<Uuid>,
    /// `team:<id>`: TEAM rows of the workspaces whose team is this one.
    pub team: Option<Uuid>,
    /// `org:<root>`: GLOBAL rows of the workspaces under this root.
    pub org: Option<Uuid>,
}

/// One memory as the Memory tab shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespacedMemory {
    pub id: Uuid,
    pub namespace: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// The full-text rank, on a full-text query only.
    pub score: Option<f32>,
}

/// The memories of a set of namespaces, best match (or newest) first.
pub async fn list_namespaced(
    executor: impl PgExecutor<'_>,
    set: NamespaceSet,
    text: TextQuery<'_>,
    limit: i64,
) -> Result<Vec<NamespacedMemory>, StoreError> {
    let rows = sqlx::query_as!(
        NamespacedMemory,
        r#"WITH RECURSIVE org AS (
               SELECT id FROM workspaces WHERE id = $3
               UNION ALL
               SELECT w.id FROM workspaces w JOIN org o ON w.parent_id = o.id)
           SELECT m.id,
                  CASE m.scope WHEN 'LOCAL' THEN 'workspace:' || m.workspace_id
                               WHEN 'TEAM' THEN 'team:' || COALESCE(w.parent_id, w.id)
                               ELSE 'org:' || $3::uuid END AS "namespace!",
                  m.content, COALESCE(m.created_at, now()) AS "created_at!",
                  CASE WHEN $4::text IS NULL THEN NULL
                       ELSE ts_rank(m.content_tsv, plainto_tsquery('english', $4)) END AS score
           FROM agent_memories m JOIN workspaces w ON w.id = m.workspace_id
           WHERE ((m.scope = 'LOCAL' AND m.workspace_id = $1)
               OR (m.scope = 'TEAM' AND COALESCE(w.parent_id, w.id) = $2)
               OR (m.scope = 'GLOBAL' AND m.workspace_id IN (SELECT id FROM org)))
             AND ($4::text IS NULL OR m.content_tsv @@ plainto_tsquery('english', $4))
             AND ($5::text IS NULL OR m.content ILIKE '%' || $5 || '%')
           ORDER BY score DESC NULLS LAST, m.created_at DESC
           LIMIT $6"#,
        set.workspace,
        set.team,
        set.org,
        text.full_text(),
        text.substring(),
        limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// Deletes a memory if it lies in one of the namespaces; whether it did.
pub async fn delete_namespaced(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    set: NamespaceSet,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        r#"WITH RECURSIVE org AS (
               SELECT id FROM workspaces WHERE id = $4
               UNION ALL
               SELECT w.id FROM workspaces w JOIN org o ON w.parent_id = o.id)
           DELETE FROM agent_memories m USING workspaces w
           WHERE m.id = $1 AND w.id = m.workspace_id
             AND ((m.scope = 'LOCAL' AND m.workspace_id = $2)
               OR (m.scope = 'TEAM' AND COALESCE(w.parent_id, w.id) = $3)
               OR (m.scope = 'GLOBAL' AND m.workspace_id IN (SELECT id FROM org)))"#,
        id,
        set.workspace,
        set.team,
        set.org
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// One memory as the admin export writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedMemory {
    pub id: Uuid,
    pub content: String,
    pub scope: String,
    pub namespace: String,
    pub created_at: Option<DateTime<Utc>>,
    pub workspace_name: String,
}

/// Every memory with its workspace's name, oldest first.
pub async fn export_all(executor: impl PgExecutor<'_>) -> Result<Vec<ExportedMemory>, StoreError> {
    let rows = sqlx::query_as!(
        ExportedMemory,
        "SELECT m.id, m.content, m.scope, m.namespace, m.created_at, w.name AS workspace_name
         FROM agent_memories m JOIN workspaces w ON w.id = m.workspace_id
         ORDER BY m.created_at ASC"
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// The oldest workspace of this name, removed ones included (as the original's import).
pub async fn workspace_by_name(
    executor: impl PgExecutor<'_>,
    name: &str,
) -> Result<Option<Uuid>, StoreError> {
    let id = sqlx::query_scalar!(
        "SELECT id FROM workspaces WHERE name = $1 ORDER BY created_at, id LIMIT 1",
        name
    )
    .fetch_optional(executor)
    .await?;
    Ok(id)
}

/// One memory to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMemory<'a> {
    pub workspace_id: Uuid,
    pub content: &'a str,
    pub scope: &'a str,
    pub namespace: &'a str,
    pub created_at: Option<DateTime<Utc>>,
}

/// Inserts an imported memory unless the workspace already has the same content in the same
/// scope; whether it was inserted.
pub async fn import_one(
    executor: impl PgExecutor<'_>,
    memory: &ImportedMemory<'_>,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "INSERT INTO agent_memories (workspace_id, content, scope, namespace, created_at)
         SELECT $1::uuid, $2::text, $3::text, $4::text, COALESCE($5::timestamptz, now())
         WHERE NOT EXISTS (SELECT 1 FROM agent_memories
                           WHERE workspace_id = $1 AND content = $2 AND scope = $3)",
        memory.workspace_id,
        memory.content,
        memory.scope,
        memory.namespace,
        memory.created_at
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// One `workspace_memory` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    pub key: String,
    pub value: serde_json::Value,
    pub version: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A workspace's live entries, by key.
pub async fn kv_list(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Vec<KvEntry>, StoreError> {
    let rows = sqlx::query_as!(
        KvEntry,
        "SELECT key, value, version, expires_at, updated_at FROM workspace_memory
         WHERE workspace_id = $1 AND (expires_at IS NULL OR expires_at > now())
         ORDER BY key",
        workspace_id
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// One live entry.
pub async fn kv_get(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
) -> Result<Option<KvEntry>, StoreError> {
    let row = sqlx::query_as!(
        KvEntry,
        "SELECT key, value, version, expires_at, updated_at FROM workspace_memory
         WHERE workspace_id = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > now())",
        workspace_id,
        key
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Deletes an entry, expired or not.
pub async fn kv_delete(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "DELETE FROM workspace_memory WHERE workspace_id = $1 AND key = $2",
        workspace_id,
        key
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Inserts or overwrites an entry (a new key starts at version 1); returns the new version.
pub async fn kv_upsert(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
    value: &serde_json::Value,
    expires_at: Option<DateTime<Utc>>,
) -> Result<i64, StoreError> {
    let version = sqlx::query_scalar!(
        "INSERT INTO workspace_memory (workspace_id, key, value, expires_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace_id, key) DO UPDATE
           SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
               updated_at = now(), version = workspace_memory.version + 1
         RETURNING version",
        workspace_id,
        key,
        value,
        expires_at
    )
    .fetch_one(executor)
    .await?;
    Ok(version)
}

/// Overwrites an entry only at `expected` version; the new version, or `None` when it was not
/// at that version.
pub async fn kv_update_if_version(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
    value: &serde_json::Value,
    expires_at: Option<DateTime<Utc>>,
    expected: i64,
) -> Result<Option<i64>, StoreError> {
    let version = sqlx::query_scalar!(
        "UPDATE workspace_memory
         SET value = $3, expires_at = $4, updated_at = now(), version = version + 1
         WHERE workspace_id = $1 AND key = $2 AND version = $5
         RETURNING version",
        workspace_id,
        key,
        value,
        expires_at,
        expected
    )
    .fetch_optional(executor)
    .await?;
    Ok(version)
}

/// Inserts a new entry at version 1 unless the key exists; whether it did.
pub async fn kv_create(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
    value: &serde_json::Value,
    expires_at: Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "INSERT INTO workspace_memory (workspace_id, key, value, expires_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, key) DO NOTHING",
        workspace_id,
        key,
        value,
        expires_at
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// An entry's current version, expired or not.
pub async fn kv_version(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
) -> Result<Option<i64>, StoreError> {
    let version = sqlx::query_scalar!(
        "SELECT version FROM workspace_memory WHERE workspace_id = $1 AND key = $2",
        workspace_id,
        key
    )
    .fetch_optional(executor)
    .await?;
    Ok(version)
}
