//! Re-encrypting every secret at rest from one `SECRETS_ENCRYPTION_KEY` to another, in place and
//! in one transaction (`workspace-server rotate-secrets-key`). The encrypted columns are
//! `workspace_secrets.encrypted_value`, `global_secrets.encrypted_value` and
//! `workspaces.platform_inbound_secret` (sealed as text, see `messaging::seal_inbound`); the
//! original's `workspace_channels` field encryption has no table here.
//!
//! Idempotent and resumable: a row that already decrypts with the new key is left as it is, so a
//! second run changes nothing and a run after an interrupted one (rolled back as a whole) starts
//! over safely. A row that decrypts with neither key stops the run before anything is written.

use sqlx::PgConnection;
use thiserror::Error;
use uuid::Uuid;

use crate::StoreError;
use crate::crypto::{Crypto, VERSION_AES_GCM, VERSION_PLAINTEXT};

/// What a rotation did, per kind of row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RotationReport {
    /// Rows moved from the old key to the new one.
    pub reencrypted: u64,
    /// Plaintext rows (`encryption_version` 0, written without a key) now encrypted.
    pub encrypted_plaintext: u64,
    /// Rows already under the new key, left untouched.
    pub already_current: u64,
}

#[derive(Debug, Error)]
pub enum RotationError {
    #[error("the new key is required (SECRETS_ENCRYPTION_KEY)")]
    NoNewKey,
    #[error(
        "{table} row {id} (key {key}) decrypts with neither the old nor the new key: nothing was \
         changed"
    )]
    Unreadable {
        table: &'static str,
        id: Uuid,
        key: String,
    },
    #[error("{table} row {id} (key {key}) has encryption_version {version}: nothing was changed")]
    UnknownVersion {
        table: &'static str,
        id: Uuid,
        key: String,
        version: i32,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RotationError {
    fn from(error: sqlx::Error) -> Self {
        RotationError::Store(StoreError::Database(error))
    }
}

/// One stored secret, of either table.
struct Stored {
    /// In `global_secrets`, else in `workspace_secrets`.
    global: bool,
    id: Uuid,
    key: String,
    value: Vec<u8>,
    version: i32,
}

impl Stored {
    fn table(&self) -> &'static str {
        if self.global {
            "global_secrets"
        } else {
            "workspace_secrets"
        }
    }
}

/// Re-encrypts every secret under `new` in one transaction, reading the rows that are not
/// already under `new` with `old` (disabled: only plaintext rows are expected besides). The
/// tables are locked against writes (reads go on) until the commit.
pub async fn rotate(
    conn: &mut PgConnection,
    old: &Crypto,
    new: &Crypto,
) -> Result<RotationReport, RotationError> {
    if !new.enabled() {
        return Err(RotationError::NoNewKey);
    }
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query!(
        "LOCK TABLE workspace_secrets, global_secrets, workspaces IN SHARE ROW EXCLUSIVE MODE"
    )
    .execute(&mut *tx)
    .await?;
    let mut report = RotationReport::default();

    let rows = sqlx::query_as!(
        Stored,
        r#"SELECT false AS "global!", id AS "id!", key AS "key!",
                  encrypted_value AS "value!", encryption_version AS "version!"
           FROM workspace_secrets
           UNION ALL
           SELECT true, id, key, encrypted_value, encryption_version FROM global_secrets
           ORDER BY 1, 2"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let (mut globals, mut ids, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        if let Some(value) = rewrap(&row, old, new, &mut report)? {
            globals.push(row.global);
            ids.push(row.id);
            values.push(value);
        }
    }
    sqlx::query!(
        r#"WITH rewrapped (global, id, value) AS (
             SELECT * FROM UNNEST($1::bool[], $2::uuid[], $3::bytea[])
           ), workspace_rows AS (
             UPDATE workspace_secrets s SET encrypted_value = r.value, encryption_version = $4
             FROM rewrapped r WHERE NOT r.global AND s.id = r.id
           )
           UPDATE global_secrets s SET encrypted_value = r.value, encryption_version = $4
           FROM rewrapped r WHERE r.global AND s.id = r.id"#,
        &globals,
        &ids,
        &values,
        VERSION_AES_GCM
    )
    .execute(&mut *tx)
    .await?;

    rotate_inbound_secrets(&mut tx, old, new, &mut report).await?;
    tx.commit().await?;
    Ok(report)
}

/// The agents' inbound secrets: plaintext ones (adopted from the Go original, or written without a
/// key) and those under the old key are sealed under the new one.
async fn rotate_inbound_secrets(
    tx: &mut PgConnection,
    old: &Crypto,
    new: &Crypto,
    report: &mut RotationReport,
) -> Result<(), RotationError> {
    use crate::messaging::{is_sealed_inbound, open_inbound, seal_inbound};
    let rows = sqlx::query!(
        r#"SELECT id, platform_inbound_secret AS "secret!" FROM workspaces
           WHERE COALESCE(platform_inbound_secret, '') <> '' ORDER BY id"#
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let plaintext = if !is_sealed_inbound(&row.secret) {
            report.encrypted_plaintext += 1;
            row.secret
        } else if open_inbound(new, &row.secret).is_ok() {
            report.already_current += 1;
            continue;
        } else {
            let plaintext =
                open_inbound(old, &row.secret).map_err(|_| RotationError::Unreadable {
                    table: "workspaces",
                    id: row.id,
                    key: "platform_inbound_secret".to_string(),
                })?;
            report.reencrypted += 1;
            plaintext
        };
        let sealed = seal_inbound(new, &plaintext)?;
        sqlx::query!(
            "UPDATE workspaces SET platform_inbound_secret = $2 WHERE id = $1",
            row.id,
            sealed
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The row's value under the new key, or `None` when it already is.
fn rewrap(
    row: &Stored,
    old: &Crypto,
    new: &Crypto,
    report: &mut RotationReport,
) -> Result<Option<Vec<u8>>, RotationError> {
    let plaintext = match row.version {
        VERSION_PLAINTEXT => {
            report.encrypted_plaintext += 1;
            row.value.clone()
        }
        VERSION_AES_GCM => {
            if new.decrypt(&row.value, row.version).is_ok() {
                report.already_current += 1;
                return Ok(None);
            }
            let plaintext =
                old.decrypt(&row.value, row.version)
                    .map_err(|_| RotationError::Unreadable {
                        table: row.table(),
                        id: row.id,
                        key: row.key.clone(),
                    })?;
            report.reencrypted += 1;
            plaintext
        }
        version => {
            return Err(RotationError::UnknownVersion {
                table: row.table(),
                id: row.id,
                key: row.key.clone(),
                version,
            });
        }
    };
    let (value, _) = new.encrypt(&plaintext).map_err(StoreError::from)?;
    Ok(Some(value))
}
