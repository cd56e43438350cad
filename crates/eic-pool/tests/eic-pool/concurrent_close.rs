//! `close` at shutdown ends every open connection concurrently: with a slow tunnel, closing them
//! one after another would outlast any shutdown budget.

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
async fn close_ends_every_connection_at_once() {
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
    // In sequence it takes at least one chunk's latency per connection.
    let sequential = Duration::from_millis(CHUNK_LATENCY_MS) * CONNECTIONS as u32;
    assert!(
        took < sequential / 2,
        "closing {CONNECTIONS} connections took {took:?} (in sequence: over {sequential:?})"
    );
}
