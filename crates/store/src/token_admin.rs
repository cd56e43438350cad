//! Listing, minting and revoking tokens for their owners (`/workspaces/{id}/tokens`,
//! `/org/tokens`). Minting and validation live in [`crate::tokens`]; this never reads a
//! plaintext back (only hashes and prefixes are stored).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// A live workspace token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: Uuid,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A page of the workspace's live tokens, newest first.
pub async fn list_workspace_tokens(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<Vec<TokenRow>, StoreError> {
    let rows = sqlx::query_as!(
        TokenRow,
        "SELECT id, prefix, created_at, last_used_at FROM workspace_auth_tokens
         WHERE workspace_id = $1 AND revoked_at IS NULL
         ORDER BY created_at DESC, id
         LIMIT $2 OFFSET $3",
        workspace_id,
        limit,
        offset
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// How many live tokens the workspace has.
pub async fn count_live_workspace_tokens(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<i64, StoreError> {
    let count = sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "count!" FROM workspace_auth_tokens
           WHERE workspace_id = $1 AND revoked_at IS NULL"#,
        workspace_id
    )
    .fetch_one(executor)
    .await?;
    Ok(count)
}

/// Revokes one live token of the workspace; returns whether one was revoked.
pub async fn revoke_workspace_token(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    token_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspace_auth_tokens SET revoked_at = now()
         WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL",
        token_id,
        workspace_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A live org token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgTokenRow {
    pub id: Uuid,
    pub prefix: String,
    pub name: Option<String>,
    pub org_id: Option<Uuid>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The original's cap on an org-token listing (`orgtoken/tokens.go:144-178` at 624ef4d0).
pub const ORG_TOKEN_LIST_LIMIT: i64 = 500;

/// Live org tokens, newest first.
pub async fn list_org_tokens(
    executor: impl PgExecutor<'_>,
) -> Result<Vec<OrgTokenRow>, StoreError> {
    let rows = sqlx::query_as!(
        OrgTokenRow,
        "SELECT id, prefix, name, org_id, created_by, created_at, last_used_at
         FROM org_api_tokens WHERE revoked_at IS NULL
         ORDER BY created_at DESC, id LIMIT $1",
        ORG_TOKEN_LIST_LIMIT
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// A freshly minted org token: its row and the plaintext, shown once.
#[derive(Debug, Clone)]
pub struct MintedOrgToken {
    pub id: Uuid,
    pub prefix: String,
    pub plaintext: String,
}

/// Mints an org token with its provenance; empty strings are stored as NULL, as the original.
pub async fn mint_org_token_by(
    executor: impl PgExecutor<'_>,
    name: &str,
    created_by: &str,
    org_id: Option<Uuid>,
) -> Result<MintedOrgToken, StoreError> {
    let (plaintext, hash, prefix) = crate::tokens::new_token();
    let id = sqlx::query_scalar!(
        "INSERT INTO org_api_tokens (token_hash, prefix, name, created_by, org_id)
         VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5) RETURNING id",
        hash,
        prefix,
        name,
        created_by,
        org_id
    )
    .fetch_one(executor)
    .await?;
    Ok(MintedOrgToken {
        id,
        prefix,
        plaintext,
    })
}

/// The `org_id` of an org token (a re-read, as the original's provenance did).
pub async fn org_of_token(
    executor: impl PgExecutor<'_>,
    token_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let org = sqlx::query_scalar!("SELECT org_id FROM org_api_tokens WHERE id = $1", token_id)
        .fetch_optional(executor)
        .await?;
    Ok(org.flatten())
}

/// Revokes a live org token; returns whether one was revoked.
pub async fn revoke_org_token(executor: impl PgExecutor<'_>, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE org_api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}
