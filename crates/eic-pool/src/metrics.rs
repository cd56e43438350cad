//! The pool's Prometheus metrics (recorded through the `metrics` facade; the server installs
//! the exporter).

use std::time::Duration;

use crate::Step;

const SETUP_DURATION: &str = "eic_setup_duration_seconds";
const OPERATION_DURATION: &str = "eic_operation_duration_seconds";

/// Bucket bounds (seconds) of the pool's histograms, for the exporter (Prometheus renders a
/// histogram only for metrics given buckets). Setups take about a second on AWS and are bounded
/// by the step timeouts; operations range from a millisecond (warm) to the operation timeout.
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 2] = [
    (
        SETUP_DURATION,
        &[
            0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
        ],
    ),
    (
        OPERATION_DURATION,
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
];

/// Registers the help text of every EIC metric (call once, after installing the recorder).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "eic_setups_total",
        "EIC connection setup steps, by step and outcome"
    );
    describe_histogram!(
        SETUP_DURATION,
        Unit::Seconds,
        "Duration of successful EIC connection setups"
    );
    describe_counter!(
        "eic_operations_total",
        "Remote file operations, by kind and outcome"
    );
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Duration of remote file operations (connection setup included), by kind"
    );
    describe_gauge!(
        "eic_connections_live",
        "Live pooled SSH connections to instances"
    );
    describe_gauge!(
        "eic_shells_open",
        "Terminal shells open on pooled connections"
    );
    describe_gauge!(
        "eic_tunnels_live",
        "EIC tunnels in use (connections and setups)"
    );
    describe_gauge!(
        "eic_operations_queued",
        "Operations waiting for a channel slot"
    );
}

pub(crate) fn connections_live(count: usize) {
    metrics::gauge!("eic_connections_live").set(count as f64);
}

pub(crate) fn shells_open(count: usize) {
    metrics::gauge!("eic_shells_open").set(count as f64);
}

pub(crate) fn tunnels_live(count: usize) {
    metrics::gauge!("eic_tunnels_live").set(count as f64);
}

pub(crate) fn operations_queued(count: usize) {
    metrics::gauge!("eic_operations_queued").set(count as f64);
}

/// One setup step finished (`outcome` is `ok` or `error`); counted once per setup and step.
pub(crate) fn setup_step(step: Step, ok: bool) {
    metrics::counter!("eic_setups_total", "step" => step.as_str(), "outcome" => outcome(ok))
        .increment(1);
}

pub(crate) fn setup_duration(elapsed: Duration) {
    metrics::histogram!(SETUP_DURATION).record(elapsed.as_secs_f64());
}

/// One file operation finished (`outcome`: `ok`, `not_found`, `too_large` or `error`).
pub(crate) fn operation(kind: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("eic_operations_total", "kind" => kind, "outcome" => outcome).increment(1);
    metrics::histogram!(OPERATION_DURATION, "kind" => kind).record(elapsed.as_secs_f64());
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}
