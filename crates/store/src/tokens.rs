//! Workspace tokens (`workspace_auth_tokens`) and org tokens (`org_api_tokens`), byte-compatible
//! with the Go original: the plaintext is 32 random bytes, base64url without padding (43 chars);
//! the database keeps only `sha256(plaintext string)` and the first 8 characters as a prefix.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{Db, StoreError};

const PREFIX_LEN: usize = 8;

/// `last_used_at` is written at most once a minute per token: it records that a token is in use,
/// not every request, so a busy agent's requests stay reads (the original wrote it on every
/// request; see docs/compatibility.md).
pub const LAST_USED_RESOLUTION_SECONDS: f64 = 60.0;

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

/// The workspace a live token belongs to: not revoked, and its workspace not removed. Stamps
/// the token's `last_used_at` when it is older than [`LAST_USED_RESOLUTION_SECONDS`].
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
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))
           )
           SELECT workspace_id FROM hit"#,
        hash_token(plaintext),
        LAST_USED_RESOLUTION_SECONDS
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

/// Looks up a live org token, stamping its `last_used_at` when older than
/// [`LAST_USED_RESOLUTION_SECONDS`].
pub async fn validate_org_token(
    executor: impl PgExecutor<'_>,
    plaintext: &str,
) -> Result<Option<OrgToken>, StoreError> {
    if plaintext.is_empty() {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"WITH hit AS (
             SELECT id, prefix, org_id FROM org_api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL
           ), touched AS (
             UPDATE org_api_tokens SET last_used_at = now()
             WHERE id IN (SELECT id FROM hit)
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))
           )
           SELECT id AS "id!", prefix AS "prefix!", org_id FROM hit"#,
        hash_token(plaintext),
        LAST_USED_RESOLUTION_SECONDS
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|r| OrgToken {
        id: r.id,
        prefix: r.prefix,
        org_id: r.org_id,
    }))
}

/// What one bearer is, in one round trip: the guards' org-token, own-token and live-token
/// checks of [`validate_org_token`], [`workspace_of_token`] and [`workspace_has_live_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerCheck {
    /// The live org token it is.
    pub org: Option<OrgToken>,
    /// The workspace whose live token it is.
    pub owner: Option<Uuid>,
    /// Whether the workspace asked about has any live token (`false` when none was asked).
    pub workspace_has_live_token: bool,
}

/// Checks `plaintext` as an org token and as a workspace token, and whether `workspace` has a
/// live token; stamps `last_used_at` of the token it is like the single checks do. Concurrent
/// checks share a statement ([`crate::batch`]).
pub async fn check_bearer(
    db: &Db,
    plaintext: &str,
    workspace: Option<Uuid>,
) -> Result<BearerCheck, StoreError> {
    let hash = if plaintext.is_empty() {
        Vec::new()
    } else {
        hash_token(plaintext)
    };
    let statement_db = db.clone();
    let check = db
        .shared()
        .bearer
        .get((hash, workspace), move |asked| async move {
            query_bearers(&statement_db, asked).await
        })
        .await?;
    // Every pair asked has its row: a missing one would be a statement that lost it.
    check.ok_or(StoreError::ReadAbandoned)
}

/// One row of [`query_bearers`]: the pair asked (its 1-based position in `asked`), and what its
/// token is.
struct BearerRow {
    n: i64,
    org_token_id: Option<Uuid>,
    org_prefix: Option<String>,
    org_id: Option<Uuid>,
    org_stamp_due: Option<bool>,
    workspace_token_id: Option<Uuid>,
    owner: Option<Uuid>,
    workspace_stamp_due: Option<bool>,
    workspace_has_live_token: bool,
}

/// [`check_bearer`] of every (token hash, workspace) pair in `asked`, in one statement (each
/// `token_hash` is unique, so a pair joins at most one token of each kind); a second one stamps
/// the tokens whose stamp is due (each at most once a minute), so the check itself stays a plain
/// read. A batch of one pair runs the same statement with scalar parameters: with array ones,
/// PostgreSQL sizes the array at 10 keys, prefers a custom plan for one, and so plans every
/// execution anew (0.37–0.44 ms against 0.09 ms).
async fn query_bearers(
    db: &Db,
    asked: Vec<(Vec<u8>, Option<Uuid>)>,
) -> Result<HashMap<(Vec<u8>, Option<Uuid>), BearerCheck>, StoreError> {
    let rows = if let [(hash, workspace)] = asked.as_slice() {
        sqlx::query_as!(
            BearerRow,
            r#"SELECT 1::bigint AS "n!", o.id AS "org_token_id?", o.prefix AS "org_prefix?",
                      o.org_id AS "org_id?",
                      (o.last_used_at IS NULL
                       OR o.last_used_at < now() - make_interval(secs => $3)) AS "org_stamp_due?",
                      t.id AS "workspace_token_id?", t.workspace_id AS "owner?",
                      (t.last_used_at IS NULL
                       OR t.last_used_at < now() - make_interval(secs => $3))
                        AS "workspace_stamp_due?",
                      (a.workspace IS NOT NULL AND EXISTS (
                         SELECT 1 FROM workspace_auth_tokens
                         WHERE workspace_id = a.workspace AND revoked_at IS NULL))
                        AS "workspace_has_live_token!"
               FROM (SELECT $1::bytea AS hash, $2::uuid AS workspace) a
               LEFT JOIN org_api_tokens o ON o.token_hash = a.hash AND o.revoked_at IS NULL
               LEFT JOIN (workspace_auth_tokens t
                          JOIN workspaces w ON w.id = t.workspace_id
                                           AND w.status IS DISTINCT FROM 'removed')
                 ON t.token_hash = a.hash AND t.revoked_at IS NULL"#,
            hash,
            *workspace as Option<Uuid>,
            LAST_USED_RESOLUTION_SECONDS
        )
        .fetch_all(db)
        .await?
    } else {
        let (hashes, workspaces): (Vec<Vec<u8>>, Vec<Option<Uuid>>) = asked.iter().cloned().unzip();
        sqlx::query_as!(
            BearerRow,
            r#"SELECT a.n AS "n!", o.id AS "org_token_id?", o.prefix AS "org_prefix?",
                      o.org_id AS "org_id?",
                      (o.last_used_at IS NULL
                       OR o.last_used_at < now() - make_interval(secs => $3)) AS "org_stamp_due?",
                      t.id AS "workspace_token_id?", t.workspace_id AS "owner?",
                      (t.last_used_at IS NULL
                       OR t.last_used_at < now() - make_interval(secs => $3))
                        AS "workspace_stamp_due?",
                      (a.workspace IS NOT NULL AND EXISTS (
                         SELECT 1 FROM workspace_auth_tokens
                         WHERE workspace_id = a.workspace AND revoked_at IS NULL))
                        AS "workspace_has_live_token!"
               FROM unnest($1::bytea[], $2::uuid[]) WITH ORDINALITY AS a(hash, workspace, n)
               LEFT JOIN org_api_tokens o ON o.token_hash = a.hash AND o.revoked_at IS NULL
               LEFT JOIN (workspace_auth_tokens t
                          JOIN workspaces w ON w.id = t.workspace_id
                                           AND w.status IS DISTINCT FROM 'removed')
                 ON t.token_hash = a.hash AND t.revoked_at IS NULL"#,
            &hashes,
            &workspaces as &[Option<Uuid>],
            LAST_USED_RESOLUTION_SECONDS
        )
        .fetch_all(db)
        .await?
    };
    let mut checks = HashMap::with_capacity(rows.len());
    let (mut org_stamps, mut workspace_stamps) = (Vec::new(), Vec::new());
    for row in rows {
        let Some(key) = usize::try_from(row.n - 1).ok().and_then(|i| asked.get(i)) else {
            continue;
        };
        if let (Some(id), Some(true)) = (row.org_token_id, row.org_stamp_due) {
            org_stamps.push(id);
        }
        if let (Some(id), Some(true)) = (row.workspace_token_id, row.workspace_stamp_due) {
            workspace_stamps.push(id);
        }
        let org = match (row.org_token_id, row.org_prefix) {
            (Some(id), Some(prefix)) => Some(OrgToken {
                id,
                prefix,
                org_id: row.org_id,
            }),
            _ => None,
        };
        let check = BearerCheck {
            org,
            owner: row.owner,
            workspace_has_live_token: row.workspace_has_live_token,
        };
        checks.insert(key.clone(), check);
    }
    if !org_stamps.is_empty() || !workspace_stamps.is_empty() {
        stamp_used(db, &org_stamps, &workspace_stamps).await?;
    }
    Ok(checks)
}

/// Stamps `last_used_at` of these live tokens, unless a stamp less than a minute old is there. A
/// row another transaction holds (being stamped or revoked there) is skipped, so that replicas
/// stamping several tokens at once never wait on each other's rows, let alone deadlock.
async fn stamp_used(db: &Db, org_ids: &[Uuid], workspace_ids: &[Uuid]) -> Result<(), StoreError> {
    sqlx::query!(
        r#"WITH due_org AS (
             SELECT id FROM org_api_tokens
             WHERE id = ANY($1) AND revoked_at IS NULL
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $3))
             ORDER BY id FOR UPDATE SKIP LOCKED
           ), touched_org AS (
             UPDATE org_api_tokens SET last_used_at = now() WHERE id IN (SELECT id FROM due_org)
           ), due_ws AS (
             SELECT id FROM workspace_auth_tokens
             WHERE id = ANY($2) AND revoked_at IS NULL
               AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $3))
             ORDER BY id FOR UPDATE SKIP LOCKED
           )
           UPDATE workspace_auth_tokens SET last_used_at = now()
           WHERE id IN (SELECT id FROM due_ws)"#,
        org_ids,
        workspace_ids,
        LAST_USED_RESOLUTION_SECONDS
    )
    .execute(db)
    .await?;
    Ok(())
}
