//! `close` at shutdown with the endpoint's 20 connections open and a slow tunnel stays within a
//! shutdown budget. (The disconnects run concurrently; this simulator's tunnel latency does not
//! delay a disconnect, so the test bounds the whole close rather than telling the two apart.)

use std::time::{Duration, Instant};

use eic_pool::EicPool;
use eic_sim::{FaultsPatch, SimProcess};

use crate::support;

/// Connections held open: the simulated endpoint's limit, as on AWS.
const CONNECTIONS: usize = 20;
/// Latency the simulator adds to every tunnel chunk once the connections are open.
const CHUNK_LATENCY_MS: u64 = 400;

fn instance_ids() -> Vec<String> {
    (0..CONNECTIONS)
        .map(|i| format!("i-{:017x}", 0x0123_4567_89ab_cde0_u64 + i as u64))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn close_with_every_connection_open_stays_within_a_shutdown_budget() {
    let ids = instance_ids();
    let args: Vec<&str> = ids
        .iter()
        .flat_map(|id| ["--instance", id.as_str()])
        .collect();
    let sim = SimProcess::spawn(&args).expect("eic-sim starts (root; openssh-server)");
    let mut config = support::config(sim.info());
    config.max_tunnels = CONNECTIONS;
    config.max_instances = CONNECTIONS;
    let pool = EicPool::new(config).await.unwrap();
    let writes = ids
        .iter()
        .map(|id| pool.write_file(id, "/configs/open", b"x"));
    for result in futures_util::future::join_all(writes).await {
        result.unwrap();
    }
    assert_eq!(
        sim.control().status().await.unwrap().live_tunnels,
        CONNECTIONS as u64
    );

    let patch = FaultsPatch {
        chunk_latency_ms: Some(CHUNK_LATENCY_MS),
        ..FaultsPatch::default()
    };
    sim.control().set_faults(patch).await.unwrap();
    let started = Instant::now();
    pool.close().await;
    let took = started.elapsed();
    // The default SHUTDOWN_TIMEOUT's clean-up reserve.
    let budget = Duration::from_secs(5);
    assert!(
        took < budget,
        "closing {CONNECTIONS} connections took {took:?}, over {budget:?}"
    );
}
