//! The A2A proxy's reads and writes: the target of a call, the caller's last outbound call (token
//! usage goes through `budget::add_usage`), an unreachable agent marked offline, and the busy queue
//! (`a2a_queue`).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;
use crate::crypto::Crypto;

/// What the proxy needs to know about the workspace it calls.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyTarget {
    pub name: String,
    /// `None` when the agent has not registered a URL (a poll-mode agent never does).
    pub url: Option<String>,
    pub status: String,
    /// `push` or `poll`.
    pub delivery_mode: String,
    pub runtime: String,
    /// Cents; no limit when `None`.
    pub budget_limit: Option<i64>,
    pub monthly_spend: i64,
}

impl ProxyTarget {
    /// The original's budget rule: spend at or over the limit refuses new calls.
    pub fn over_budget(&self) -> bool {
        self.budget_limit
            .is_some_and(|limit| self.monthly_spend >= limit)
    }

    pub fn polls(&self) -> bool {
        self.delivery_mode == "poll"
    }
}

/// The target of a call; `None` when it does not exist or is removed.
pub async fn proxy_target(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<ProxyTarget>, StoreError> {
    let target = sqlx::query_as!(
        ProxyTarget,
        r#"SELECT name, NULLIF(url, '') AS url, COALESCE(status::text, '') AS "status!",
                  delivery_mode, COALESCE(runtime, 'langgraph') AS "runtime!",
                  budget_limit, monthly_spend
           FROM workspaces WHERE id = $1 AND status IS DISTINCT FROM 'removed'"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(target)
}

/// Stamps the caller's `last_outbound_at` after a call it made was answered.
pub async fn touch_last_outbound(
    executor: impl PgExecutor<'_>,
    caller_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE workspaces SET last_outbound_at = now() WHERE id = $1",
        caller_id
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks a workspace whose agent refused the connection `offline`, unless it is removed or still
/// provisioning; returns whether it changed.
pub async fn mark_unreachable(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE workspaces SET status = 'offline', updated_at = now()
         WHERE id = $1 AND status NOT IN ('removed', 'provisioning', 'offline')",
        workspace_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The platform's shared secret with the agent (it authenticates the platform's calls to the
/// agent, e.g. chat uploads), minted on first use: 32 random bytes, base64url. `None` when the
/// workspace does not exist. Stored encrypted when `crypto` has a key (see [`seal_inbound`]).
pub async fn inbound_secret(
    executor: impl PgExecutor<'_>,
    crypto: &Crypto,
    workspace_id: Uuid,
) -> Result<Option<String>, StoreError> {
    Ok(inbound_secret_healed(executor, crypto, workspace_id)
        .await?
        .map(|(secret, _)| secret))
}

/// [`inbound_secret`], and whether it was minted by this call (the original's "read or lazy
/// heal", `handlers/workspace_provision_shared.go:65-81` at 624ef4d0).
pub async fn inbound_secret_healed(
    executor: impl PgExecutor<'_>,
    crypto: &Crypto,
    workspace_id: Uuid,
) -> Result<Option<(String, bool)>, StoreError> {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    let minted = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let sealed = seal_inbound(crypto, &minted)?;
    let row = sqlx::query!(
        r#"WITH old AS (
             SELECT NULLIF(platform_inbound_secret, '') AS secret
             FROM workspaces WHERE id = $1 FOR UPDATE
           )
           UPDATE workspaces w
           SET platform_inbound_secret = COALESCE(old.secret, $2)
           FROM old WHERE w.id = $1
           RETURNING w.platform_inbound_secret AS "secret!", (old.secret IS NULL) AS "minted!""#,
        workspace_id,
        sealed
    )
    .fetch_optional(executor)
    .await?;
    match row {
        None => Ok(None),
        Some(row) if row.minted => Ok(Some((minted, true))),
        Some(row) => Ok(Some((open_inbound(crypto, &row.secret)?, false))),
    }
}

/// The prefix of an encrypted `platform_inbound_secret`: `enc:<version>:` then the standard
/// base64 of what [`Crypto::encrypt`] produced. A value without it is plaintext (as the Go
/// original stores it, and as it is stored here without a key); base64url never holds `:`.
const SEALED_PREFIX: &str = "enc:";

/// The stored form of an inbound secret: encrypted with the secrets' cipher when it has a key.
pub fn seal_inbound(crypto: &Crypto, secret: &str) -> Result<String, StoreError> {
    use base64::Engine;
    if !crypto.enabled() {
        return Ok(secret.to_string());
    }
    let (sealed, version) = crypto.encrypt(secret.as_bytes())?;
    let text = base64::engine::general_purpose::STANDARD.encode(sealed);
    Ok(format!("{SEALED_PREFIX}{version}:{text}"))
}

/// Whether a stored inbound secret is sealed (else it is plaintext).
pub fn is_sealed_inbound(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The secret from its stored form (encrypted, or plaintext as an adopted Go database has it).
pub fn open_inbound(crypto: &Crypto, stored: &str) -> Result<String, StoreError> {
    use base64::Engine;
    let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(stored.to_string());
    };
    let broken = |_: &str| StoreError::Crypto(crate::crypto::CryptoError::DecryptFailed);
    let (version, text) = rest.split_once(':').ok_or_else(|| broken("no version"))?;
    let version: i32 = version.parse().map_err(|_| broken("bad version"))?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| broken("bad base64"))?;
    let plain = crypto.decrypt(&sealed, version)?;
    String::from_utf8(plain).map_err(|_| broken("not UTF-8"))
}

/// A request the busy agent could not take, as queued.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQueueItem<'a> {
    pub workspace_id: Uuid,
    pub caller_id: Option<Uuid>,
    pub body: &'a serde_json::Value,
    pub method: Option<&'a str>,
    /// `params.message.messageId`: a retried request is queued once.
    pub idempotency_key: Option<&'a str>,
    pub expires_in_seconds: Option<i64>,
}

/// Queues a request (or finds the active one with the same idempotency key); returns its id and
/// how many requests now wait for this workspace.
pub async fn enqueue(
    executor: impl PgExecutor<'_>,
    item: &NewQueueItem<'_>,
) -> Result<(Uuid, i64), StoreError> {
    let row = sqlx::query!(
        r#"WITH inserted AS (
             INSERT INTO a2a_queue (workspace_id, caller_id, body, method, idempotency_key, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::float8))
             ON CONFLICT (workspace_id, idempotency_key)
               WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'dispatched')
               DO NOTHING
             RETURNING id
           )
           SELECT COALESCE(
                    (SELECT id FROM inserted),
                    (SELECT id FROM a2a_queue WHERE workspace_id = $1 AND idempotency_key = $5
                       AND status IN ('queued', 'dispatched') LIMIT 1)) AS "id!",
                  (SELECT count(*) FROM a2a_queue WHERE workspace_id = $1 AND status = 'queued')
                    + (SELECT count(*) FROM inserted) AS "depth!""#,
        item.workspace_id,
        item.caller_id,
        item.body,
        item.method,
        item.idempotency_key,
        item.expires_in_seconds.map(|s| s as f64)
    )
    .fetch_one(executor)
    .await?;
    Ok((row.id, row.depth))
}

/// A queued request taken for dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedItem {
    pub id: Uuid,
    pub caller_id: Option<Uuid>,
    pub body: serde_json::Value,
    pub attempts: i32,
}

/// After this many attempts a queued request is reported failed instead of retried.
pub const MAX_QUEUE_ATTEMPTS: i32 = 5;

/// Takes the workspace's next unexpired request (highest priority, then oldest) for dispatch.
pub async fn claim_next(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
) -> Result<Option<ClaimedItem>, StoreError> {
    let item = sqlx::query_as!(
        ClaimedItem,
        r#"UPDATE a2a_queue SET status = 'dispatched', dispatched_at = now(),
                                attempts = attempts + 1
           WHERE id = (SELECT id FROM a2a_queue
                       WHERE workspace_id = $1 AND status = 'queued'
                         AND (expires_at IS NULL OR expires_at > now())
                       ORDER BY priority DESC, enqueued_at ASC
                       LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING id, caller_id, body, attempts"#,
        workspace_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(item)
}

/// The dispatched request was delivered.
pub async fn complete(executor: impl PgExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE a2a_queue SET status = 'completed', completed_at = now() WHERE id = $1",
        id
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The dispatched request was not delivered: queued again, or failed after
/// [`MAX_QUEUE_ATTEMPTS`].
pub async fn retry_or_fail(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE a2a_queue SET last_error = $2, dispatched_at = NULL,
           status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'queued' END
         WHERE id = $1",
        id,
        error,
        MAX_QUEUE_ATTEMPTS
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// One queued request as its status route shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub caller_id: Option<Uuid>,
    pub status: String,
    pub priority: i16,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
    pub dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn queue_item(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<QueueItem>, StoreError> {
    let item = sqlx::query_as!(
        QueueItem,
        "SELECT id, workspace_id, caller_id, status, priority, attempts, last_error, enqueued_at,
                dispatched_at, completed_at, expires_at
         FROM a2a_queue WHERE id = $1",
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(item)
}

/// Drops requests queued longer than `max_age_minutes` (of one workspace, or all); returns how
/// many.
pub async fn drop_stale(
    executor: impl PgExecutor<'_>,
    max_age_minutes: i64,
    workspace_id: Option<Uuid>,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        r#"UPDATE a2a_queue SET status = 'dropped',
             last_error = COALESCE(last_error || E'\n', '')
               || '[DropStaleQueueItems] auto-dropped: queue item age exceeded the post-incident TTL. Dropped at '
               || now()::text
           WHERE id IN (SELECT id FROM a2a_queue
                        WHERE status = 'queued'
                          AND enqueued_at < now() - make_interval(mins => $1::int)
                          AND ($2::uuid IS NULL OR workspace_id = $2)
                        FOR UPDATE SKIP LOCKED)"#,
        max_age_minutes as i32,
        workspace_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Whether an agent reporting `active_tasks` can take one more.
pub async fn has_capacity(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    active_tasks: i32,
) -> Result<bool, StoreError> {
    let capacity = sqlx::query_scalar!(
        r#"SELECT max_concurrent_tasks > $2 AS "free!" FROM workspaces WHERE id = $1"#,
        workspace_id,
        active_tasks
    )
    .fetch_optional(executor)
    .await?;
    Ok(capacity.unwrap_or(false))
}
