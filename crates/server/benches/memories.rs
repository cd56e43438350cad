//! Memory search over 100,000 memories of one workspace through the real server (release
//! build): p50 and p99 of `GET /workspaces/{id}/memories?q=<word>` at 16 connections, and the
//! `EXPLAIN` of the search showing the full-text index. Run with `scripts/bench-memories`.
//! Targets: p50 ≤ 5 ms, p99 ≤ 20 ms.

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::TestServer;
use harness::panel::{ms, quantile};
use serde_json::json;

const MEMORIES: i64 = 100_000;
/// Distinct words; each memory holds three, so a word matches about 0.3% of the memories.
const VOCABULARY: i64 = 1_000;
const CONNECTIONS: usize = 16;
const REQUESTS_PER_CONNECTION: usize = 1_000;

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("RATE_LIMIT", "100000000")
        .start()
        .await;
    let pool = server.pool().await.expect("a fresh database");
    let (_, created) = server
        .post("/workspaces", &json!({"name": "bench-memories"}))
        .await;
    let id = created["id"].as_str().expect("a workspace").to_string();
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO agent_memories (workspace_id, content, scope, namespace, created_at)
         SELECT $1::uuid,
                'note ' || n || ' about w' || (n * 7919 % $3) || ' and w' || (n * 104729 % $3)
                  || ' then w' || (n * 15485863 % $3),
                'LOCAL', 'general', now() - n * interval '1 second'
         FROM generate_series(1, $2) AS n",
    )
    .bind(&id)
    .bind(MEMORIES)
    .bind(VOCABULARY)
    .execute(&pool)
    .await
    .expect("seeded");
    // What autovacuum does after this many inserts (statistics, hint bits, visibility map), done
    // at once rather than waited for: the searches below see the table's steady state.
    sqlx::query("VACUUM ANALYZE agent_memories")
        .execute(&pool)
        .await
        .expect("analyzed");
    println!("seeded {MEMORIES} memories in {}", ms(started.elapsed()));

    // The statement the route runs for a full-text query without a scope, with the values it
    // binds, planned as the server's prepared statement ends up planned: generically.
    let mut connection = pool.acquire().await.expect("a connection");
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *connection)
        .await
        .expect("generic plans");
    let explain = format!("EXPLAIN ANALYZE {}", store::memories::SEARCH_FULL_TEXT_SQL);
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .bind(uuid::Uuid::parse_str(&id).expect("a uuid"))
        .bind("")
        .bind(None::<String>)
        .bind("w42")
        .bind(50_i64)
        .fetch_all(&mut *connection)
        .await
        .expect("a plan");
    drop(connection);
    println!("EXPLAIN ANALYZE of a search for one word (generic plan):");
    for line in plan {
        println!("  {line}");
    }

    // One connection first, for the latency without queueing, then the target's 16.
    for connections in [1, CONNECTIONS] {
        let samples = search_load(&server, &id, connections).await;
        println!(
            "search, {connections} connection(s), {} requests: p50 {}, p99 {}",
            samples.len(),
            ms(quantile(&samples, 0.5)),
            ms(quantile(&samples, 0.99))
        );
    }
}

/// Every connection searches for a different word each time; returns each request's latency.
async fn search_load(server: &TestServer, id: &str, count: usize) -> Vec<Duration> {
    let mut connections = Vec::new();
    for connection in 0..count {
        let client = reqwest::Client::new();
        let base = server.url(&format!("/workspaces/{id}/memories?q=w"));
        connections.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(REQUESTS_PER_CONNECTION);
            for request in 0..REQUESTS_PER_CONNECTION {
                let word = (connection * REQUESTS_PER_CONNECTION + request) as i64 % VOCABULARY;
                let started = Instant::now();
                let response = client
                    .get(format!("{base}{word}"))
                    .send()
                    .await
                    .expect("sent");
                assert!(response.status().is_success());
                response.bytes().await.expect("a body");
                samples.push(started.elapsed());
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for connection in connections {
        samples.extend(connection.await.expect("a connection"));
    }
    samples
}
