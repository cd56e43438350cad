//! Adopting a database written by the Go original.
//!
//! The Go server tracks its migrations by filename in `schema_migrations`; sqlx tracks versions
//! with checksums in `_sqlx_migrations`. Our baseline migration is the consolidated final shape of
//! the Go schema, so on a Go database it must not run (its `CREATE TYPE`/`CREATE TABLE` would
//! fail). Instead we check that everything the baseline creates is there and record the baseline
//! as applied, exactly as sqlx would have recorded it, so `MIGRATOR.run` only applies what is
//! newer.

use std::collections::HashSet;

use sqlx::PgPool;

use crate::StoreError;
use crate::migrate::MIGRATOR;

/// Version of `migrations/20260101000000_baseline.sql`.
pub const BASELINE_VERSION: i64 = 20260101000000;

/// Every table and column the baseline creates. A Go database must have all of them to be
/// adopted; `baseline_columns_match_the_migration` (tests/store/adopt.rs) keeps this list in sync with
/// the migration file.
pub const BASELINE_COLUMNS: &[(&str, &[&str])] = &[
    (
        "workspaces",
        &[
            "id",
            "name",
            "role",
            "tier",
            "status",
            "source_bundle_id",
            "agent_card",
            "url",
            "parent_id",
            "forwarded_to",
            "last_heartbeat_at",
            "last_error_rate",
            "last_sample_error",
            "active_tasks",
            "uptime_seconds",
            "created_at",
            "updated_at",
            "current_task",
            "awareness_namespace",
            "runtime",
            "workspace_dir",
            "workspace_access",
            "budget_limit",
            "monthly_spend",
            "hibernation_idle_minutes",
            "last_outbound_at",
            "max_concurrent_tasks",
            "instance_id",
            "platform_inbound_secret",
            "delivery_mode",
            "runtime_image_digest",
        ],
    ),
    ("canvas_layouts", &["workspace_id", "x", "y", "collapsed"]),
    (
        "workspace_secrets",
        &[
            "id",
            "workspace_id",
            "key",
            "encrypted_value",
            "created_at",
            "updated_at",
            "encryption_version",
        ],
    ),
    (
        "global_secrets",
        &[
            "id",
            "key",
            "encrypted_value",
            "created_at",
            "updated_at",
            "encryption_version",
        ],
    ),
    (
        "workspace_auth_tokens",
        &[
            "id",
            "workspace_id",
            "token_hash",
            "prefix",
            "created_at",
            "last_used_at",
            "revoked_at",
        ],
    ),
    (
        "org_api_tokens",
        &[
            "id",
            "token_hash",
            "prefix",
            "name",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
            "org_id",
        ],
    ),
    (
        "structure_events",
        &[
            "id",
            "event_type",
            "workspace_id",
            "agent_id",
            "target_id",
            "payload",
            "created_at",
        ],
    ),
];

/// What [`adopt_go_schema`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// Not a Go database (fresh, or already managed by sqlx): nothing to do.
    NotNeeded,
    /// A Go database whose baseline was just recorded as applied.
    Adopted,
}

/// When the database holds the Go original's schema and our baseline is not recorded yet, checks
/// the schema and records the baseline as applied without running it.
///
/// Safe to race with other replicas: sqlx's `skip` takes the migrator's advisory lock and only
/// records versions that are still missing.
pub async fn adopt_go_schema(pool: &PgPool) -> Result<Adoption, StoreError> {
    if !holds_unadopted_go_schema(pool).await? {
        return Ok(Adoption::NotNeeded);
    }
    let missing = missing_baseline_columns(pool).await?;
    if !missing.is_empty() {
        return Err(StoreError::IncompatibleSchema { missing });
    }
    // Takes the pool (not a connection) so the future stays `Send` for any caller.
    MIGRATOR.skip(pool, Some(BASELINE_VERSION)).await?;
    tracing::info!(
        baseline = BASELINE_VERSION,
        "adopted a database written by the Go original: baseline recorded as applied"
    );
    Ok(Adoption::Adopted)
}

/// True when the Go runner's `schema_migrations(filename)` and the `workspaces` table exist and
/// `_sqlx_migrations` does not record the baseline. (A `schema_migrations` without `workspaces`
/// is a Go boot that died before its first file: the baseline can simply run.)
async fn holds_unadopted_go_schema(pool: &PgPool) -> Result<bool, StoreError> {
    let go_tables = sqlx::query_scalar!(
        r#"SELECT
             EXISTS (SELECT 1 FROM information_schema.columns
                     WHERE table_schema = current_schema()
                       AND table_name = 'schema_migrations' AND column_name = 'filename')
             AND to_regclass('workspaces') IS NOT NULL AS "present!""#
    )
    .fetch_one(pool)
    .await?;
    if !go_tables {
        return Ok(false);
    }
    let sqlx_table =
        sqlx::query_scalar!(r#"SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS "present!""#)
            .fetch_one(pool)
            .await?;
    if !sqlx_table {
        return Ok(true);
    }
    let baseline_recorded = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $1) AS "recorded!""#,
        BASELINE_VERSION
    )
    .fetch_one(pool)
    .await?;
    Ok(!baseline_recorded)
}

/// `table.column` names the baseline creates that the current schema lacks, in baseline order.
pub async fn missing_baseline_columns(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let tables: Vec<String> = BASELINE_COLUMNS
        .iter()
        .map(|(table, _)| table.to_string())
        .collect();
    let present: HashSet<(String, String)> = sqlx::query!(
        r#"SELECT table_name::text AS "table_name!", column_name::text AS "column_name!"
           FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = ANY($1)"#,
        &tables
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| (row.table_name, row.column_name))
    .collect();
    Ok(BASELINE_COLUMNS
        .iter()
        .flat_map(|(table, columns)| columns.iter().map(move |column| (*table, *column)))
        .filter(|(table, column)| !present.contains(&(table.to_string(), column.to_string())))
        .map(|(table, column)| format!("{table}.{column}"))
        .collect())
}
