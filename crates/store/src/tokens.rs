//! Workspace tokens (`workspace_auth_tokens`) and org tokens (`org_api_tokens`), byte-compatible
//! with the Go original: the plaintext is 32 random bytes, base64url without padding (43 chars);
//! the database keeps only `sha256(plaintext string)` and the first 8 characters as a prefix.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

const PREFIX_LEN: usize = 8;

/// A freshly minted plaintext token with the two values stored for it.
struct Minted {
    plaintext: String,
    hash: Vec<u8>,
    prefix: String,
}

fn mint() -> Minted {
    let bytes: [u8; 32] = rand::random();
    let plaintext = URL_SAFE_NO_PAD.encode(bytes);
    let prefix = plaintext[..PREFIX_LEN].to_string();
    Minted {
        hash: hash_token(&plaintext),
        plaintext,
        prefix,
    }
}

/// A new token as (plaintext, stored hash, prefix), for callers inserting their own row.
pub fn new_token() -> (String, Vec<u8>, String) {
    let token = mint();
    (token.plaintext, token.hash, token.prefix)
}

/// The stored form of a token: sha256 of the plaintext string.
pub fn hash_token(plaintext: &str) -> Vec<u8> {
    Sha256::digest(plaintext.as_bytes()).to_vec()
}

/// Mints a workspace token and returns its plaintext (shown once, never stored).
pub async fn mint_workspace_token(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<String, StoreError> {
    let token = mint();
    sqlx::query!(
        "INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) VALUES ($1, $2, $3)",
        workspace_id,
        token.hash,
        token.prefix
    )
    .execute(executor)
    .await?;
    Ok(token.plaintext)
}

/// The workspace a live token belongs to: not revoked, and its workspace not removed.
pub async fn workspace_of_token(
    executor: impl PgExecutor<'_>,
    plaintext: &str,
) -> Result<Option<Uuid>, StoreError> {
    if plaintext.is_empty() {
        return Ok(None);
    }
    let workspace_id = sqlx::query_scalar!(
        r#"WITH hit AS (
             SELECT t.id, t.workspace_id FROM workspace_auth_tokens t
             JOIN workspaces w ON w.id = t.workspace_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL
               AND w.status IS DISTINCT FROM 'removed'
           ), touched AS (
             UPDATE workspace_auth_tokens SET last_used_at = now()
             WHERE id IN (SELECT id FROM hit)
           )
           SELECT workspace_id FROM hit"#,
        hash_token(plaintext)
    )
    .fetch_optional(executor)
    .await?;
    Ok(workspace_id)
}

/// Whether any live workspace token exists at all (AdminAuth's fresh-install check).
pub async fn any_live_token(executor: impl PgExecutor<'_>) -> Result<bool, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspace_auth_tokens WHERE revoked_at IS NULL) AS "exists!""#
    )
    .fetch_one(executor)
    .await?;
    Ok(exists)
}

/// Whether this workspace has a live token (the `/state` handler's own check).
pub async fn workspace_has_live_token(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<bool, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspace_auth_tokens
                          WHERE workspace_id = $1 AND revoked_at IS NULL) AS "exists!""#,
        workspace_id
    )
    .fetch_one(executor)
    .await?;
    Ok(exists)
}

/// Revokes every live token of these workspaces; returns how many were revoked.
pub async fn revoke_for_workspaces(
    executor: impl PgExecutor<'_>,
    workspace_ids: &[Uuid],
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspace_auth_tokens SET revoked_at = now()
         WHERE workspace_id = ANY($1) AND revoked_at IS NULL",
        workspace_ids
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// A validated org token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgToken {
    pub id: Uuid,
    pub prefix: String,
    pub org_id: Option<Uuid>,
}

/// Mints an org token (for operators' tooling and tests) and returns its plaintext.
pub async fn mint_org_token(
    executor: impl PgExecutor<'_>,
    name: &str,
    org_id: Option<Uuid>,
) -> Result<String, StoreError> {
    let token = mint();
    sqlx::query!(
        "INSERT INTO org_api_tokens (token_hash, prefix, name, org_id) VALUES ($1, $2, $3, $4)",
        token.hash,
        token.prefix,
        name,
        org_id
    )
    .execute(executor)
    .await?;
    Ok(token.plaintext)
}

/// Looks up a live org token, bumping its `last_used_at`.
pub async fn validate_org_token(
    executor: impl PgExecutor<'_>,
    plaintext: &str,
) -> Result<Option<OrgToken>, StoreError> {
    if plaintext.is_empty() {
        return Ok(None);
    }
    let row = sqlx::query!(
        "UPDATE org_api_tokens SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL
         RETURNING id, prefix, org_id",
        hash_token(plaintext)
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| OrgToken {
        id: r.id,
        prefix: r.prefix,
        org_id: r.org_id,
    }))
}
