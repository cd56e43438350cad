//! Two server processes on one database fire schedules: every due slot is claimed by exactly one
//! replica. The workspaces here have no agent: each run goes through the A2A proxy, which answers
//! `workspace has no URL`, and is recorded as an error with a history row and a `CRON_EXECUTED`
//! event, which is what is counted here (`a2a_agents.rs` fires one to a real agent).

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::harness::TestServer;

const WAIT: Duration = Duration::from_secs(30);

async fn replicas() -> (TestServer, TestServer) {
    let first = TestServer::builder()
        .env("SCHEDULER_POLL_INTERVAL", "20ms")
        .env("MOLECULE_ENV", "development")
        .start()
        .await;
    let url = first.database_url.clone().expect("a fresh database");
    let second = TestServer::builder()
        .database_url(&url)
        .env("SCHEDULER_POLL_INTERVAL", "20ms")
        .env("MOLECULE_ENV", "development")
        .start()
        .await;
    (first, second)
}

/// Creates a workspace and a schedule that never comes due by itself (once a year).
async fn yearly_schedule(server: &TestServer, name: &str) -> (String, String) {
    let (status, created) = server.post("/workspaces", &json!({"name": name})).await;
    assert_eq!(status, 201, "{created}");
    let workspace = created["id"].as_str().unwrap().to_string();
    let schedule = json!({"name": name, "cron_expr": "0 0 1 1 *", "prompt": "hello"});
    let (status, created) = server
        .post(&format!("/workspaces/{workspace}/schedules"), &schedule)
        .await;
    assert_eq!(status, 201, "{created}");
    (workspace, created["id"].as_str().unwrap().to_string())
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits until `sql` counts at least `at_least`.
async fn wait_for(pool: &PgPool, sql: &'static str, at_least: i64) {
    tokio::time::timeout(WAIT, async {
        while count(pool, sql).await < at_least {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{sql} did not reach {at_least} within {WAIT:?}"));
}

const RUNS: &str = "SELECT COALESCE(SUM(run_count), 0)::bigint FROM workspace_schedules";
const HISTORY: &str = "SELECT count(*) FROM activity_logs WHERE activity_type = 'cron_run'";
const EXECUTED: &str = "SELECT count(*) FROM structure_events WHERE event_type = 'CRON_EXECUTED'";

#[tokio::test]
async fn a_schedule_due_fifty_times_fires_fifty_times_across_two_replicas() {
    let (first, _second) = replicas().await;
    let pool = first.pool().await.unwrap();
    let (workspace, schedule) = yearly_schedule(&first, "fifty").await;
    for due in 1..=50 {
        sqlx::query("UPDATE workspace_schedules SET next_run_at = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
        wait_for(&pool, HISTORY, due).await;
    }
    // Both replicas keep polling; a second claim of any slot would show up here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&pool, RUNS).await, 50);
    assert_eq!(count(&pool, HISTORY).await, 50);
    assert_eq!(count(&pool, EXECUTED).await, 50);

    let (status, history) = first
        .get(&format!(
            "/workspaces/{workspace}/schedules/{schedule}/history"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(history.as_array().unwrap().len(), 20, "the last 20 runs");
    assert_eq!(history[0]["status"], "error");
    assert_eq!(history[0]["error_detail"], "workspace has no URL");
}

#[tokio::test]
async fn many_schedules_due_at_once_each_fire_once() {
    let (first, _second) = replicas().await;
    let pool = first.pool().await.unwrap();
    let (workspace, _) = yearly_schedule(&first, "many").await;
    sqlx::query(
        "INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, next_run_at)
         SELECT $1::uuid, 'bulk-' || n, '0 0 1 1 *', 'hi', now() - interval '1 minute'
         FROM generate_series(1, 300) AS n",
    )
    .bind(&workspace)
    .execute(&pool)
    .await
    .unwrap();
    wait_for(&pool, HISTORY, 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&pool, HISTORY).await, 300);
    assert_eq!(count(&pool, RUNS).await, 300);
}
