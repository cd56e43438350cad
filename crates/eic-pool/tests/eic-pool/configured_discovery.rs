//! Discovery is skipped when configuration names the endpoint and the instance's private IP:
//! the connection is built without a single EC2 call.

use crate::support;

use crate::support::INSTANCE;
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
