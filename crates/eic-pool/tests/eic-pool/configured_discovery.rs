//! Discovery is skipped when configuration names the endpoint and the instance's private IP:
//! the connection is built without a single EC2 call.

use crate::support;

use crate::support::INSTANCE;
use std::time::{Duration, Instant};

use eic_pool::EicPool;

#[tokio::test(flavor = "multi_thread")]
async fn a_fully_configured_instance_needs_no_ec2_call() {
    let sim = support::sim();
    let mut config = support::config(sim.info());
    let endpoint_dns = sim
        .info()
        .aws_endpoint_url
        .trim_start_matches("http://")
        .to_owned();
    config.endpoint_id = Some(eic_sim::ENDPOINT_ID.to_owned());
    config.endpoint_dns = Some(endpoint_dns);
    config.instance_ips.insert(
        INSTANCE.to_owned(),
        sim.instance(INSTANCE).private_ip.clone(),
    );
    let pool = EicPool::new(config).await.unwrap();

    pool.write_file(INSTANCE, "/configs/configured", b"no describe")
        .await
        .unwrap();
    let read = pool
        .read_file(INSTANCE, "/configs/configured", 1024)
        .await
        .unwrap();
    assert_eq!(read, b"no describe");

    let status = sim.control().status().await.unwrap();
    assert_eq!(status.describe_calls, 0, "{status:?}");
    assert_eq!(status.keys_pushed, 1, "{status:?}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configuration_the_instance_is_discovered() {
    let sim = support::sim();
    let pool = EicPool::new(support::config(sim.info())).await.unwrap();
    pool.write_file(INSTANCE, "/configs/discovered", b"described")
        .await
        .unwrap();
    let status = sim.control().status().await.unwrap();
    assert_eq!(status.describe_calls, 2, "{status:?}");
    pool.close().await;
}

/// EC2 may split the endpoint listing over pages, some of them empty: discovery follows
/// `NextToken` to the endpoint on the last page.
#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_listing_is_followed_across_pages() {
    let sim = support::sim();
    sim.control()
        .set_faults(eic_sim::FaultsPatch {
            endpoint_pages: Some(3),
            ..eic_sim::FaultsPatch::default()
        })
        .await
        .unwrap();
    let pool = EicPool::new(support::config(sim.info())).await.unwrap();
    pool.write_file(INSTANCE, "/configs/paged", b"third page")
        .await
        .unwrap();
    let status = sim.control().status().await.unwrap();
    assert_eq!(
        status.describe_calls, 4,
        "three pages of endpoints and one instance: {status:?}"
    );
    pool.close().await;
}

/// The two `Describe` calls run at once (the endpoint lookup needs no answer of the instance's),
/// and their result is cached per instance: with each call charged 400 ms and nothing else
/// delayed, a cold setup pays one call's delay, not two, and the next setup none.
#[tokio::test(flavor = "multi_thread")]
async fn discovery_costs_one_describe_round_trip_and_is_cached() {
    const DESCRIBE: Duration = Duration::from_millis(400);
    let sim = support::sim();
    sim.control()
        .set_faults(eic_sim::FaultsPatch {
            describe_delay_ms: Some(400),
            ..eic_sim::FaultsPatch::default()
        })
        .await
        .unwrap();
    let pool = EicPool::new(support::config(sim.info())).await.unwrap();
    let started = Instant::now();
    pool.write_file(INSTANCE, "/configs/timed", b"x")
        .await
        .unwrap();
    let cold = started.elapsed();
    assert!(cold >= DESCRIBE, "{cold:?}");
    assert!(cold < DESCRIBE * 2, "both Describe calls at once: {cold:?}");
    assert_eq!(sim.control().status().await.unwrap().describe_calls, 2);

    // A new connection to the same instance (the first one dropped) describes nothing.
    sim.control().drop_tunnels().await.unwrap();
    let _ = pool.read_file(INSTANCE, "/configs/timed", 16).await;
    pool.read_file(INSTANCE, "/configs/timed", 16)
        .await
        .unwrap();
    let status = sim.control().status().await.unwrap();
    assert_eq!(status.describe_calls, 2, "{status:?}");
    assert!(status.tunnels_opened >= 2, "{status:?}");
    pool.close().await;
}
