//! The single-statement lane of `store::Db` against a real PostgreSQL: reuse, errors that keep
//! or end a session, interrupted statements, its bound and its closing.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::join_all;
use sqlx::{PgPool, Row};
use store::Db;

async fn backend_pid(db: &Db) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_statement_reuses_the_lane_connection_the_last_one_left(pool: PgPool) {
    let db = Db::new(pool, 1);
    let first = backend_pid(&db).await;
    for _ in 0..5 {
        assert_eq!(backend_pid(&db).await, first);
    }
    // Rows, results and many-row answers come back whole.
    let rows = sqlx::query("SELECT n FROM generate_series(1, 1000) AS n")
        .fetch_all(&db)
        .await
        .unwrap();
    let total: i64 = rows.iter().map(|row| i64::from(row.get::<i32, _>(0))).sum();
    assert_eq!(total, 500_500);
    let done = sqlx::query("CREATE TEMP TABLE t AS SELECT 1 AS n FROM generate_series(1, 7)")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 7);
    assert_eq!(backend_pid(&db).await, first);
}

#[sqlx::test(migrations = false)]
async fn a_database_error_keeps_the_session_for_the_next_statement(pool: PgPool) {
    let db = Db::new(pool, 1);
    let before = backend_pid(&db).await;
    let error = sqlx::query("SELECT 1 / 0").execute(&db).await.unwrap_err();
    assert!(error.as_database_error().is_some(), "{error}");
    assert_eq!(backend_pid(&db).await, before);
}

#[sqlx::test(migrations = false)]
async fn an_interrupted_statement_does_not_leak_into_the_next(pool: PgPool) {
    let db = Db::new(pool, 1);
    let before = backend_pid(&db).await;
    let interrupted = tokio::time::timeout(
        Duration::from_millis(100),
        sqlx::query_scalar::<_, String>("SELECT 'late' FROM pg_sleep(0.5)").fetch_one(&db),
    )
    .await;
    assert!(
        interrupted.is_err(),
        "the statement should still be running"
    );
    // The lane's only connection is checked first (its late answer drained), then reused.
    let next: String = sqlx::query_scalar("SELECT 'next'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(next, "next");
    assert_eq!(backend_pid(&db).await, before);
}

#[sqlx::test(migrations = false)]
async fn a_terminated_session_is_replaced(pool: PgPool) {
    let db = Db::new(pool.clone(), 1);
    let doomed = backend_pid(&db).await;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(doomed)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(terminated);
    // The next statement may learn of it (a FATAL error or a closed socket); the one after that
    // runs on a new session, never on the dead one.
    let _ = sqlx::query("SELECT 1").execute(&db).await;
    let replacement = backend_pid(&db).await;
    assert_ne!(replacement, doomed);
}

#[sqlx::test(migrations = false)]
async fn the_lane_holds_at_most_its_size(pool: PgPool) {
    let db = Db::new(pool, 2);
    let statements = (0..8).map(|_| {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid() FROM pg_sleep(0.05)").fetch_one(&db)
    });
    let pids: BTreeSet<i32> = join_all(statements)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(pids.len() <= 2, "{} sessions for a lane of 2", pids.len());
    assert!(db.size() - db.pool().size() <= 2);
    assert_eq!(
        db.max_connections() - db.pool().options().get_max_connections(),
        2
    );
}

#[sqlx::test(migrations = false)]
async fn a_closed_handle_refuses_statements(pool: PgPool) {
    let db = Db::new(pool, 1);
    backend_pid(&db).await;
    db.close().await;
    let error = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
    assert!(matches!(error, sqlx::Error::PoolClosed), "{error}");
}
