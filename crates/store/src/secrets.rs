//! `workspace_secrets`: per-workspace values encrypted at rest with [`Crypto`] (model and provider
//! live here too, under `MODEL_PROVIDER` and `LLM_PROVIDER`).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;
use crate::crypto::Crypto;

/// Key of the workspace's model slug (the name is the original's).
pub const MODEL_KEY: &str = "MODEL_PROVIDER";
/// Key of the workspace's LLM provider slug.
pub const PROVIDER_KEY: &str = "LLM_PROVIDER";

/// Encrypts and upserts one secret.
pub async fn upsert(
    executor: impl PgExecutor<'_>,
    crypto: &Crypto,
    workspace_id: Uuid,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    let (encrypted, version) = crypto.encrypt(value.as_bytes())?;
    sqlx::query!(
        "INSERT INTO workspace_secrets (workspace_id, key, encrypted_value, encryption_version)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace_id, key) DO UPDATE
           SET encrypted_value = EXCLUDED.encrypted_value,
               encryption_version = EXCLUDED.encryption_version,
               updated_at = now()",
        workspace_id,
        key,
        encrypted,
        version
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Reads and decrypts one secret; `None` when absent.
pub async fn get(
    executor: impl PgExecutor<'_>,
    crypto: &Crypto,
    workspace_id: Uuid,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query!(
        "SELECT encrypted_value, encryption_version FROM workspace_secrets
         WHERE workspace_id = $1 AND key = $2",
        workspace_id,
        key
    )
    .fetch_optional(executor)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let plain = crypto.decrypt(&row.encrypted_value, row.encryption_version)?;
    Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
}

/// Deletes one secret; returns whether a row existed.
pub async fn delete(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    key: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM workspace_secrets WHERE workspace_id = $1 AND key = $2",
        workspace_id,
        key
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() > 0)
}
