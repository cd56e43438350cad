//! Provisioning through the control plane, against `eic-sim --control-plane` and the real server
//! (release build). Run with `scripts/bench-provision`. Measures:
//! 1. create → `instance_id` stored, one at a time, with a control plane that answers at once:
//!    the median is the server's own time around the control plane's call (goal ≤ 50 ms p50);
//! 2. 100 concurrent creates with a control plane taking 100 ms per provision: all provisioned,
//!    at most `PROVISION_CONCURRENCY` (16) calls in flight (the simulator counts them), wall time;
//! 3. the `/cp/*` proxy's overhead: the same control-plane GET through the server and directly,
//!    interleaved in one run (goal ≤ 1 ms p50).

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use eic_sim::{CpFaultsPatch, SimControl, SimProcess};
use harness::TestServer;
use harness::panel::{instance_ids, ms, quantile};
use reqwest::StatusCode;
use serde_json::json;

const ORG: &str = "org-bench";
const ADMIN: &str = "admin-bench";
const SEQUENTIAL: usize = 50;
const CONCURRENT: usize = 100;
const CONCURRENT_CP_DELAY_MS: u64 = 100;
const CONCURRENCY: usize = 16;
const PROXY_RUNS: usize = 1000;

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let ids = instance_ids(1);
    let sim = tokio::task::block_in_place(|| {
        SimProcess::spawn(&["--control-plane", "--instance", &ids[0]])
    })
    .expect("eic-sim starts");
    let info = sim.info().clone();
    let cp = info.control_plane_url.clone().expect("a control plane");
    let control = SimControl::new(&info.aws_endpoint_url);
    let server = TestServer::builder()
        .env("MOLECULE_ORG_ID", ORG)
        .env("ADMIN_TOKEN", ADMIN)
        .env("MOLECULE_CP_URL", &cp)
        .env("CP_UPSTREAM_URL", &cp)
        .env("RATE_LIMIT", "100000000")
        .env("PROVISION_CONCURRENCY", &CONCURRENCY.to_string())
        .env("RUST_LOG", "warn")
        .start()
        .await;
    let pool = server.pool().await.expect("the server's database");
    let client = reqwest::Client::new();
    let create = |name: String| {
        let client = client.clone();
        let url = server.url("/workspaces");
        async move {
            let response = client
                .post(url)
                .header("X-Molecule-Org-Id", ORG)
                .bearer_auth(ADMIN)
                .json(&json!({"name": name, "runtime": "langgraph"}))
                .send()
                .await
                .expect("create");
            assert_eq!(response.status(), StatusCode::CREATED);
            let body: serde_json::Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        }
    };
    let instance_of = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT instance_id FROM workspaces WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    // 1. One at a time, the control plane answering at once.
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for n in 0..SEQUENTIAL {
        let started = Instant::now();
        let id = create(format!("seq-{n}")).await;
        while instance_of(id.clone()).await.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "not provisioned"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(started.elapsed());
    }
    println!("create → instance_id stored, control plane answering at once ({SEQUENTIAL} runs)");
    println!(
        "  median {}, p90 {}, max {}  (POST /workspaces + background provision + store; polled every 0.5 ms)",
        ms(quantile(&samples, 0.5)),
        ms(quantile(&samples, 0.9)),
        ms(quantile(&samples, 1.0))
    );

    // 2. 100 concurrent creates, the control plane taking 100 ms per provision.
    control
        .set_cp_faults(CpFaultsPatch {
            mode: None,
            delay_ms: Some(CONCURRENT_CP_DELAY_MS),
        })
        .await
        .unwrap();
    control.clear_cp_calls().await.unwrap();
    let started = Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for n in 0..CONCURRENT {
        creates.spawn(create(format!("conc-{n}")));
    }
    let created: Vec<String> = creates.join_all().await;
    let answered = started.elapsed();
    loop {
        let provisioned: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workspaces WHERE name LIKE 'conc-%' AND instance_id IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if provisioned as usize == CONCURRENT {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{provisioned}/{CONCURRENT} provisioned"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = started.elapsed();
    let status = control.cp_status().await.unwrap();
    let provisions = status
        .calls
        .iter()
        .filter(|c| c.path == "/cp/workspaces/provision")
        .count();
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status::text FROM workspaces WHERE name LIKE 'conc-%'")
            .fetch_all(&pool)
            .await
            .unwrap();
    println!(
        "{CONCURRENT} concurrent creates, control plane {CONCURRENT_CP_DELAY_MS} ms per provision, PROVISION_CONCURRENCY {CONCURRENCY}"
    );
    println!(
        "  all {} answered 201 in {}; all provisioned in {} (ideal {} ms: {CONCURRENT}/{CONCURRENCY} rounds × {CONCURRENT_CP_DELAY_MS} ms)",
        created.len(),
        ms(answered),
        ms(all),
        CONCURRENT.div_ceil(CONCURRENCY) as u64 * CONCURRENT_CP_DELAY_MS
    );
    println!(
        "  provision calls received {provisions}, at most {} in flight; statuses now {statuses:?}",
        status.max_provisions_in_flight
    );
    control
        .set_cp_faults(CpFaultsPatch {
            mode: None,
            delay_ms: Some(0),
        })
        .await
        .unwrap();

    // 3. The /cp/* proxy against a direct call, interleaved.
    let path = "/cp/auth/bench-echo";
    let through = server.url(path);
    let direct = format!("{cp}{path}");
    let timed = |url: String| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let response = client
                .get(url)
                .header("X-Molecule-Org-Id", ORG)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.unwrap();
            started.elapsed()
        }
    };
    for _ in 0..50 {
        timed(through.clone()).await;
        timed(direct.clone()).await;
    }
    let mut via_proxy = Vec::with_capacity(PROXY_RUNS);
    let mut straight = Vec::with_capacity(PROXY_RUNS);
    for _ in 0..PROXY_RUNS {
        via_proxy.push(timed(through.clone()).await);
        straight.push(timed(direct.clone()).await);
    }
    let (p, d) = (quantile(&via_proxy, 0.5), quantile(&straight, 0.5));
    println!(
        "/cp/* proxy, GET {path} (the simulator's echo), {PROXY_RUNS} interleaved runs, one keep-alive client"
    );
    println!(
        "  through the server: median {}, p99 {}; direct: median {}, p99 {}; overhead (median difference) {}",
        ms(p),
        ms(quantile(&via_proxy, 0.99)),
        ms(d),
        ms(quantile(&straight, 0.99)),
        ms(p.saturating_sub(d))
    );
    drop(server);
    drop(sim);
}
