//! The pool's metrics through the real Prometheus exporter, against `eic-sim` and its sshd:
//! every setup counts each step once, by outcome, and durations render as histograms.

use crate::support;

use crate::support::INSTANCE;
use eic_pool::{EicError, EicPool, Step};
use eic_sim::FaultsPatch;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

fn count(text: &str, step: &str, outcome: &str) -> u64 {
    let series = format!("eic_setups_total{{step=\"{step}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_setup_counts_each_step_once_and_durations_are_histograms() {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in eic_pool::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
            .unwrap();
    }
    let metrics = builder.install_recorder().unwrap();
    let sim = support::sim();

    let pool = EicPool::new(support::config(sim.info())).await.unwrap();
    pool.write_file(INSTANCE, "/configs/m", b"x").await.unwrap();
    assert_eq!(
        pool.read_file(INSTANCE, "/configs/m", 10).await.unwrap(),
        b"x"
    );
    let text = metrics.render();
    for step in ["discovery", "key_push", "tunnel", "ssh", "sftp"] {
        assert_eq!(count(&text, step, "ok"), 1, "{step}:\n{text}");
        assert_eq!(count(&text, step, "error"), 0, "{step}:\n{text}");
    }
    for histogram in [
        "eic_setup_duration_seconds",
        "eic_operation_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram}:\n{text}"
        );
    }
    assert!(
        text.contains("eic_setup_duration_seconds_bucket{le=\"30\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("eic_operation_duration_seconds_bucket{kind=\"read\",le=\"30\"} 1"),
        "{text}"
    );

    // A setup that fails at authentication (keys no longer authorise logins): the SSH step is
    // counted once, as an error, and the key exchange before it is not counted as a success.
    sim.control()
        .set_faults(FaultsPatch {
            key_ttl_ms: Some(0),
            ..FaultsPatch::default()
        })
        .await
        .unwrap();
    let fresh = EicPool::new(support::config(sim.info())).await.unwrap();
    let error = fresh
        .read_file(INSTANCE, "/configs/m", 10)
        .await
        .unwrap_err();
    assert!(matches!(error, EicError::Ssh { .. }), "{error:?}");
    assert_eq!(error.step(), Some(Step::Ssh));
    let text = metrics.render();
    assert_eq!(count(&text, "ssh", "ok"), 1, "{text}");
    assert_eq!(count(&text, "ssh", "error"), 1, "{text}");
    assert_eq!(count(&text, "tunnel", "ok"), 2, "{text}");
    assert_eq!(count(&text, "sftp", "ok"), 1, "{text}");
    fresh.close().await;
    pool.close().await;
}
