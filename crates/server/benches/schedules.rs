//! The schedules' firing loop with two replicas on one database (release build): 1,000
//! schedules come due at once for a workspace whose agent (on loopback, in this process) answers
//! at once; the time until every one has been delivered through the A2A proxy and recorded (its
//! history row written), and a check that none fired twice. Run with `scripts/bench-schedules`.
//! Target: ≤ 2 s, no double fire.

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::TestServer;
use harness::panel::ms;

const SCHEDULES: i64 = 1_000;
const POLL: &str = "100ms";
const HISTORY: &str = "SELECT count(*) FROM activity_logs WHERE activity_type = 'cron_run'";

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let replica = |builder: harness::ServerBuilder| {
        builder
            .env("MOLECULE_ENV", "development")
            .env("SCHEDULER_POLL_INTERVAL", POLL)
            .start()
    };
    let first = replica(TestServer::builder()).await;
    let url = first.database_url.clone().expect("a fresh database");
    let _second = replica(TestServer::builder().database_url(&url)).await;
    let pool = first.pool().await.expect("a fresh database");
    let agent = harness::agent::start(Duration::ZERO).await;
    let id = harness::agent::registered_workspace(&first, "bench-cron", &agent).await;

    let started = Instant::now();
    sqlx::query(
        "INSERT INTO workspace_schedules (workspace_id, name, cron_expr, prompt, next_run_at)
         SELECT $1::uuid, 'bench-' || n, '0 0 1 1 *', 'hello', now()
         FROM generate_series(1, $2) AS n",
    )
    .bind(&id)
    .bind(SCHEDULES)
    .execute(&pool)
    .await
    .expect("seeded");
    wait_until_fired(&pool, started).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fired: i64 = sqlx::query_scalar(HISTORY)
        .fetch_one(&pool)
        .await
        .expect("a count");
    let runs: i64 = sqlx::query_scalar("SELECT SUM(run_count)::bigint FROM workspace_schedules")
        .fetch_one(&pool)
        .await
        .expect("a sum");
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_schedules WHERE last_status = 'ok'")
            .fetch_one(&pool)
            .await
            .expect("a count");
    println!(
        "{SCHEDULES} due schedules, 2 replicas polling every {POLL}: all fired in {} \
         (from the insert's commit to the last history row); history rows {fired}, runs {runs}, \
         answered by the agent {delivered}",
        ms(elapsed)
    );
    assert_eq!(
        (fired, runs),
        (SCHEDULES, SCHEDULES),
        "a schedule fired twice"
    );
    assert_eq!(delivered, SCHEDULES, "every prompt reaches the agent");
}

/// Returns once every schedule has a history row.
async fn wait_until_fired(pool: &sqlx::PgPool, started: Instant) {
    loop {
        let fired: i64 = sqlx::query_scalar(HISTORY)
            .fetch_one(pool)
            .await
            .expect("a count");
        if fired >= SCHEDULES {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {fired} fired in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
