//! The binary's subcommands as an operator (or a container runtime) calls them: `migrate`,
//! `healthcheck`, `version`, and `serve` (also the default).

use crate::harness::{TestDatabase, TestServer, repo_root, run_command};

async fn recorded_migrations(database: &TestDatabase) -> i64 {
    let pool = database.pool().await;
    let count = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

/// The number of forward migrations in `migrations/`.
fn migration_files() -> i64 {
    let dir = repo_root().join("migrations");
    let count = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".sql") && !name.ends_with(".down.sql")
        })
        .count();
    i64::try_from(count).unwrap()
}

#[tokio::test]
async fn migrate_succeeds_on_an_empty_then_on_a_migrated_database() {
    let database = TestDatabase::create().await.unwrap();
    let env = [("DATABASE_URL", database.url.as_str())];

    let (status, output) = run_command(&env, &["migrate"]).unwrap();
    assert!(status.success(), "first migrate: {status}\n{output}");
    assert_eq!(recorded_migrations(&database).await, migration_files());

    let (status, output) = run_command(&env, &["migrate"]).unwrap();
    assert!(status.success(), "second migrate: {status}\n{output}");
    assert_eq!(recorded_migrations(&database).await, migration_files());
}

#[tokio::test]
async fn migrate_adopts_a_database_written_by_the_go_original() {
    let database = TestDatabase::create().await.unwrap();
    let pool = database.pool().await;
    sqlx::raw_sql(include_str!("../../../../tests/fixtures/go_schema.sql"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let env = [("DATABASE_URL", database.url.as_str())];

    for attempt in ["first", "second"] {
        let (status, output) = run_command(&env, &["migrate"]).unwrap();
        assert!(status.success(), "{attempt} migrate: {status}\n{output}");
    }
    assert_eq!(recorded_migrations(&database).await, migration_files());
}

#[tokio::test]
async fn migrate_names_the_columns_a_go_database_lacks() {
    let database = TestDatabase::create().await.unwrap();
    let pool = database.pool().await;
    sqlx::raw_sql(include_str!("../../../../tests/fixtures/go_schema.sql"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE workspaces DROP COLUMN delivery_mode")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let (status, output) =
        run_command(&[("DATABASE_URL", database.url.as_str())], &["migrate"]).unwrap();
    // 2: a schema fault, which retrying cannot fix (the tenant entrypoint stops on it).
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("workspaces.delivery_mode"),
        "the error names the column:\n{output}"
    );
}

#[tokio::test]
async fn migrate_fails_when_the_database_is_unreachable() {
    // Port 1 on loopback refuses connections at once.
    let env = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere"),
        ("DB_ACQUIRE_TIMEOUT", "2s"),
    ];
    let (status, output) = run_command(&env, &["migrate"]).unwrap();
    assert_eq!(status.code(), Some(1), "{output}");
}

#[tokio::test]
async fn healthcheck_exits_0_against_a_running_server() {
    let server = TestServer::start().await;
    let port = server.port.to_string();
    let (status, output) = run_command(&[("PORT", port.as_str())], &["healthcheck"]).unwrap();
    assert!(status.success(), "{status}\n{output}");
}

#[tokio::test]
async fn healthcheck_exits_1_when_nothing_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port = port.to_string();
    let (status, output) = run_command(&[("PORT", port.as_str())], &["healthcheck"]).unwrap();
    assert_eq!(status.code(), Some(1), "{output}");
}

#[tokio::test]
async fn healthcheck_exits_1_after_the_server_stopped() {
    let mut server = TestServer::start().await;
    let port = server.port.to_string();
    server.terminate();
    let (status, output) = run_command(&[("PORT", port.as_str())], &["healthcheck"]).unwrap();
    assert_eq!(status.code(), Some(1), "{output}");
}

#[test]
fn version_prints_the_version_and_the_git_sha() {
    let (status, output) = run_command(&[], &["version"]).unwrap();
    assert!(status.success(), "{output}");
    let line = output.trim();
    let expected_prefix = format!("workspace-server {} (", env!("CARGO_PKG_VERSION"));
    assert!(
        line.starts_with(&expected_prefix) && line.ends_with(')'),
        "{line}"
    );
}

#[tokio::test]
async fn serve_is_the_default_and_can_be_named() {
    for args in [&[][..], &["serve"][..]] {
        let mut builder = TestServer::builder();
        for arg in args {
            builder = builder.arg(arg);
        }
        let server = builder.start().await;
        let (status, body) = server.get("/health").await;
        assert_eq!(status, 200, "args {args:?}");
        assert_eq!(body, serde_json::json!({"status": "ok"}));
    }
}
