//! The pool's Prometheus metrics (recorded through the `metrics` facade; the server installs
//! the exporter).

use std::time::Duration;

use crate::Step;

/// Registers the help text of every EIC metric (call once, after installing the recorder).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "eic_setups_total",
        "EIC connection setup steps, by step and outcome"
    );
    describe_histogram!(
        "eic_setup_duration_seconds",
        Unit::Seconds,
        "Duration of successful EIC connection setups"
    );
    describe_counter!(
        "eic_operations_total",
        "Remote file operations, by kind and outcome"
    );
    describe_histogram!(
        "eic_operation_duration_seconds",
        Unit::Seconds,
        "Duration of remote file operations (connection setup included), by kind"
    );
    describe_gauge!(
        "eic_connections_live",
        "Live pooled SSH connections to instances"
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

pub(crate) fn tunnels_live(count: usize) {
    metrics::gauge!("eic_tunnels_live").set(count as f64);
}

pub(crate) fn operations_queued(count: usize) {
    metrics::gauge!("eic_operations_queued").set(count as f64);
}

/// One setup step finished (`outcome` is `ok` or `error`).
pub(crate) fn setup_step(step: Step, ok: bool) {
    metrics::counter!("eic_setups_total", "step" => step.as_str(), "outcome" => outcome(ok))
        .increment(1);
}

pub(crate) fn setup_duration(elapsed: Duration) {
    metrics::histogram!("eic_setup_duration_seconds").record(elapsed.as_secs_f64());
}

/// One file operation finished (`outcome`: `ok`, `not_found`, `too_large` or `error`).
pub(crate) fn operation(kind: &'static str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("eic_operations_total", "kind" => kind, "outcome" => outcome).increment(1);
    metrics::histogram!("eic_operation_duration_seconds", "kind" => kind)
        .record(elapsed.as_secs_f64());
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}
