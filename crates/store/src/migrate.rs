//! Schema migrations, embedded in the binary.

use sqlx::PgPool;

use crate::StoreError;

/// The embedded migrations (`migrations/` at the repository root), applied at startup under
/// sqlx's advisory lock so several replicas can start at once.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Brings the schema up to date. Applying it twice is a no-op. A database written by the Go
/// original is adopted first (its baseline recorded as applied, see `crate::adopt`).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    crate::adopt::adopt_go_schema(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}
