//! A workspace's own activity and memories searched together (the original's `SessionSearch`,
//! `handlers/activity.go:280-418` at 624ef4d0).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// One hit: an activity row or a memory.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionItem {
    /// `activity` or `memory`.
    pub kind: String,
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// The activity type, or the memory's scope.
    pub label: String,
    pub content: String,
    pub method: String,
    pub status: String,
    pub request_body: Option<serde_json::Value>,
    pub response_body: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// The newest items of `workspace_id`, at most `limit`; when `query` is not empty only those
/// with it (case-insensitive, `%` and `_` as in `ILIKE`, as the original) in their content,
/// label, method, status or bodies.
pub async fn search(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    query: &str,
    limit: i64,
) -> Result<Vec<SessionItem>, StoreError> {
    let pattern = (!query.is_empty()).then(|| format!("%{query}%"));
    let rows = sqlx::query_as!(
        SessionItem,
        r#"WITH session_items AS (
             SELECT 'activity' AS kind, id, workspace_id, activity_type AS label,
                    COALESCE(summary, '') AS content, COALESCE(method, '') AS method,
                    COALESCE(status, '') AS status, request_body, response_body, created_at
             FROM activity_logs WHERE workspace_id = $1
             UNION ALL
             SELECT 'memory', id, workspace_id, scope::text, content, '', '',
                    NULL::jsonb, NULL::jsonb, created_at
             FROM agent_memories WHERE workspace_id = $1 AND created_at IS NOT NULL
           )
           SELECT kind AS "kind!", id AS "id!", workspace_id AS "workspace_id!",
                  label AS "label!", content AS "content!", method AS "method!",
                  status AS "status!", request_body, response_body,
                  created_at AS "created_at!"
           FROM session_items
           WHERE $2::text IS NULL
              OR content ILIKE $2 OR label ILIKE $2 OR method ILIKE $2 OR status ILIKE $2
              OR COALESCE(request_body::text, '') ILIKE $2
              OR COALESCE(response_body::text, '') ILIKE $2
           ORDER BY created_at DESC
           LIMIT $3"#,
        workspace_id,
        pattern,
        limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}
