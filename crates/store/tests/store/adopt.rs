//! Adopting a database written by the Go original (`tests/fixtures/go_schema.sql`), against a
//! real PostgreSQL: each test gets a fresh, empty database from `#[sqlx::test]`.

use std::collections::BTreeSet;

use sqlx::PgPool;
use store::StoreError;
use store::adopt::{Adoption, BASELINE_COLUMNS, BASELINE_VERSION, adopt_go_schema};

const GO_SCHEMA: &str = include_str!("../../../../tests/fixtures/go_schema.sql");

async fn load_go_schema(pool: &PgPool) {
    sqlx::raw_sql(GO_SCHEMA).execute(pool).await.unwrap();
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    // Test-only: table names are literals of this file.
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn recorded_migrations(pool: &PgPool) -> Vec<(i64, Vec<u8>)> {
    sqlx::query_as::<_, (i64, Vec<u8>)>(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn all_migrations() -> Vec<(i64, Vec<u8>)> {
    store::MIGRATOR
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect()
}

#[sqlx::test(migrations = false)]
async fn adopts_a_go_database_and_keeps_every_row(pool: PgPool) {
    load_go_schema(&pool).await;
    let before: Vec<(String, i64)> = counted_tables(&pool).await;

    store::migrate(&pool).await.unwrap();
    store::migrate(&pool).await.unwrap();

    // The baseline is recorded with sqlx's own checksum and everything newer was applied.
    assert_eq!(recorded_migrations(&pool).await, all_migrations());
    assert_eq!(counted_tables(&pool).await, before);
    assert_eq!(
        count(&pool, "schema_migrations").await,
        52,
        "the Go bookkeeping is left alone"
    );

    let (model, version): (String, i32) = sqlx::query_as(
        "SELECT encode(encrypted_value, 'hex'), encryption_version FROM workspace_secrets
         WHERE workspace_id = '11111111-1111-4111-8111-111111111111' AND key = 'MODEL_PROVIDER'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(version, 1);
    assert_eq!(
        model,
        "676b8bb84ce7267dd520decad4e97ff34bc9637ffeb9123922b56611e7143f3931980a18bff78ef7c5970dc9cf75b9bb",
        "the ciphertext is left byte for byte"
    );
    let (name, status, instance): (String, String, Option<String>) = sqlx::query_as(
        "SELECT name, status::text, instance_id FROM workspaces
         WHERE id = '11111111-1111-4111-8111-111111111111'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), status.as_str(), instance.as_deref()),
        ("Alpha", "online", Some("i-0123456789abcdef0"))
    );
}

async fn counted_tables(pool: &PgPool) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    for table in [
        "workspaces",
        "canvas_layouts",
        "canvas_viewport",
        "workspace_secrets",
        "global_secrets",
        "workspace_auth_tokens",
        "org_api_tokens",
        "structure_events",
        "activity_logs",
        "workspace_config",
        "approval_requests",
        "workspace_token_usage",
        "audit_events",
        "agent_memories",
        "workspace_memory",
        "workspace_schedules",
    ] {
        counts.push((table.to_string(), count(pool, table).await));
    }
    counts
}

#[sqlx::test(migrations = false)]
async fn adoption_happens_once(pool: PgPool) {
    load_go_schema(&pool).await;
    assert_eq!(adopt_go_schema(&pool).await.unwrap(), Adoption::Adopted);
    assert_eq!(adopt_go_schema(&pool).await.unwrap(), Adoption::NotNeeded);
    assert_eq!(
        recorded_migrations(&pool).await,
        all_migrations()
            .into_iter()
            .filter(|(v, _)| *v <= BASELINE_VERSION)
            .collect::<Vec<_>>(),
        "only the baseline is recorded; newer migrations are left to the migrator"
    );
}

#[sqlx::test(migrations = false)]
async fn replicas_adopting_at_once_both_succeed(pool: PgPool) {
    load_go_schema(&pool).await;
    let (first, second) = tokio::join!(store::migrate(&pool), store::migrate(&pool));
    first.unwrap();
    second.unwrap();
    assert_eq!(recorded_migrations(&pool).await, all_migrations());
}

#[sqlx::test(migrations = false)]
async fn a_go_database_missing_columns_is_refused_naming_them(pool: PgPool) {
    load_go_schema(&pool).await;
    sqlx::raw_sql(
        "ALTER TABLE workspaces DROP COLUMN runtime_image_digest;
         ALTER TABLE org_api_tokens DROP COLUMN org_id;",
    )
    .execute(&pool)
    .await
    .unwrap();

    let error = store::migrate(&pool).await.unwrap_err();
    let StoreError::IncompatibleSchema { missing } = &error else {
        panic!("expected IncompatibleSchema, got {error:?}");
    };
    assert_eq!(
        missing,
        &["workspaces.runtime_image_digest", "org_api_tokens.org_id"]
    );
    let message = error.to_string();
    assert!(
        message.contains("workspaces.runtime_image_digest, org_api_tokens.org_id"),
        "{message}"
    );
    let sqlx_table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        sqlx_table, None,
        "nothing is recorded for a refused database"
    );
}

#[sqlx::test(migrations = false)]
async fn a_fresh_database_is_migrated_normally(pool: PgPool) {
    store::migrate(&pool).await.unwrap();
    store::migrate(&pool).await.unwrap();
    assert_eq!(recorded_migrations(&pool).await, all_migrations());
    assert_eq!(adopt_go_schema(&pool).await.unwrap(), Adoption::NotNeeded);
    assert!(
        store::adopt::missing_baseline_columns(&pool)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A Go boot that died after creating its bookkeeping table but before its first file leaves
/// `schema_migrations` and nothing else: the baseline simply runs.
#[sqlx::test(migrations = false)]
async fn an_empty_go_bookkeeping_table_runs_the_baseline(pool: PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (filename text PRIMARY KEY,
                                         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    store::migrate(&pool).await.unwrap();
    assert_eq!(recorded_migrations(&pool).await, all_migrations());
    assert_eq!(count(&pool, "workspaces").await, 0);
}

/// `BASELINE_COLUMNS` must list exactly what the baseline migration creates.
#[sqlx::test(migrations = false)]
async fn baseline_columns_match_the_migration(pool: PgPool) {
    let baseline = store::MIGRATOR
        .iter()
        .find(|m| m.version == BASELINE_VERSION)
        .expect("the baseline migration is embedded");
    sqlx::raw_sql(baseline.sql.clone())
        .execute(&pool)
        .await
        .unwrap();

    let created: BTreeSet<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let listed: BTreeSet<(String, String)> = BASELINE_COLUMNS
        .iter()
        .flat_map(|(table, columns)| columns.iter().map(|c| (table.to_string(), c.to_string())))
        .collect();
    assert_eq!(listed, created);
}
