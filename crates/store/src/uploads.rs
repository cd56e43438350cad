//! `pending_uploads`: chat attachments staged for a poll-mode agent, which fetches and acks them
//! (the original's `internal/pendinguploads/storage.go` at 624ef4d0).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The largest file staged (`storage.go:47`).
pub const MAX_FILE_BYTES: i64 = 25 * 1024 * 1024;

/// A file as staged.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload<'a> {
    pub workspace_id: Uuid,
    pub content: &'a [u8],
    pub filename: &'a str,
    pub mimetype: &'a str,
}

/// Stages one file and returns its id.
pub async fn stage(
    executor: impl PgExecutor<'_>,
    upload: &NewUpload<'_>,
) -> Result<Uuid, StoreError> {
    let size = i64::try_from(upload.content.len()).unwrap_or(i64::MAX);
    let id = sqlx::query_scalar!(
        "INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype)
         VALUES ($1, $2, $3, $4, $5) RETURNING file_id",
        upload.workspace_id,
        upload.content,
        size,
        upload.filename,
        upload.mimetype
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// A staged file that is neither acked nor expired.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpload {
    pub file_id: Uuid,
    pub workspace_id: Uuid,
    pub content: Vec<u8>,
    pub size_bytes: i64,
    pub filename: String,
    pub mimetype: String,
}

/// The file `file_id` if it is still pending (not acked, not expired), whichever workspace owns it.
pub async fn pending(
    executor: impl PgExecutor<'_>,
    file_id: Uuid,
) -> Result<Option<PendingUpload>, StoreError> {
    let row = sqlx::query_as!(
        PendingUpload,
        "SELECT file_id, workspace_id, content, size_bytes, filename, mimetype
         FROM pending_uploads
         WHERE file_id = $1 AND acked_at IS NULL AND expires_at > now()",
        file_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// The owner of a pending file, without its content.
pub async fn pending_owner(
    executor: impl PgExecutor<'_>,
    file_id: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let owner = sqlx::query_scalar!(
        "SELECT workspace_id FROM pending_uploads
         WHERE file_id = $1 AND acked_at IS NULL AND expires_at > now()",
        file_id
    )
    .fetch_optional(executor)
    .await?;
    Ok(owner)
}

/// Notes that the agent fetched the file (best effort).
pub async fn mark_fetched(executor: impl PgExecutor<'_>, file_id: Uuid) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE pending_uploads SET fetched_at = now() WHERE file_id = $1",
        file_id
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Acks a pending file; `false` when it was no longer pending.
pub async fn ack(executor: impl PgExecutor<'_>, file_id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "UPDATE pending_uploads SET acked_at = now()
         WHERE file_id = $1 AND acked_at IS NULL AND expires_at > now()",
        file_id
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes files acked more than an hour ago and files past their expiry (`storage.go:412-438`);
/// returns how many.
pub async fn sweep(executor: impl PgExecutor<'_>) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM pending_uploads
         WHERE (acked_at IS NOT NULL AND acked_at < now() - interval '1 hour')
            OR (acked_at IS NULL AND expires_at < now())"
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
