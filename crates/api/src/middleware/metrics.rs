//! HTTP metrics: one counter and one duration histogram per method, matched route pattern and
//! status (series names kept from the Go original where it had them).

use std::ops::ControlFlow;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;

use super::sync::Middleware;

/// Requests answered, by `method`, `path` (the route pattern, or `unmatched`) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "molecule_http_requests_total";
/// Time to the response head in seconds, same labels as [`HTTP_REQUESTS_TOTAL`].
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "molecule_http_request_duration_seconds";
/// Connections the database pool holds (in use or idle), set when `/metrics` is scraped.
pub const DB_POOL_CONNECTIONS: &str = "molecule_db_pool_connections";
/// Idle connections of the database pool, set when `/metrics` is scraped.
pub const DB_POOL_IDLE_CONNECTIONS: &str = "molecule_db_pool_idle_connections";

/// Most connections the database pool may hold (`DB_MAX_CONNECTIONS`), for saturation alerts.
pub const DB_POOL_MAX_CONNECTIONS: &str = "molecule_db_pool_max_connections";
/// Always 1, labelled with the server's `version` and `git_sha`.
pub const BUILD_INFO: &str = "workspace_server_build_info";
/// Seconds since the process started serving metrics.
pub const UPTIME_SECONDS: &str = "workspace_server_uptime_seconds";
/// Resident memory of the process, from `/proc/self/status`.
pub const RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// Open file descriptors of the process (sockets included), from `/proc/self/fd`.
pub const OPEN_FDS: &str = "process_open_fds";

/// Seconds since each background loop last ticked (`loop`: its name in `GET /admin/liveness`),
/// set when `/metrics` is scraped: a stalled loop's value keeps growing.
pub const BACKGROUND_LOOP_AGE_SECONDS: &str = "workspace_server_background_loop_age_seconds";

/// When [`describe`] ran: the origin of [`UPTIME_SECONDS`].
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Histogram buckets for [`HTTP_REQUEST_DURATION_SECONDS`]: 1 ms to 30 s (file operations on a
/// remote host may take seconds).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Registers the help texts; call once after installing the recorder.
pub fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request duration until the response head"
    );
    metrics::describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections, in use or idle"
    );
    metrics::describe_gauge!(DB_POOL_IDLE_CONNECTIONS, "Idle database pool connections");
    metrics::describe_gauge!(DB_POOL_MAX_CONNECTIONS, "Database pool size limit");
    metrics::describe_gauge!(BUILD_INFO, "Always 1; the labels name the build");
    metrics::describe_gauge!(UPTIME_SECONDS, metrics::Unit::Seconds, "Process uptime");
    metrics::describe_gauge!(
        RESIDENT_MEMORY_BYTES,
        metrics::Unit::Bytes,
        "Resident memory size"
    );
    metrics::describe_gauge!(OPEN_FDS, "Open file descriptors");
    metrics::describe_gauge!(
        BACKGROUND_LOOP_AGE_SECONDS,
        metrics::Unit::Seconds,
        "Seconds since the background loop last ticked"
    );
    STARTED.get_or_init(Instant::now);
}

/// Sets the age of every background loop's last tick; called when `/metrics` is scraped.
pub fn record_liveness(liveness: &crate::liveness::Liveness) {
    let now = chrono::Utc::now();
    for (name, last) in liveness.snapshot() {
        let age = (now - last).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!(BACKGROUND_LOOP_AGE_SECONDS, "loop" => name).set(age);
    }
}

/// Sets the build and process gauges; called when `/metrics` is scraped.
pub fn record_process(version: &str, git_sha: &str) {
    let labels = [
        ("version", version.to_owned()),
        ("git_sha", git_sha.to_owned()),
    ];
    metrics::gauge!(BUILD_INFO, &labels).set(1.0);
    let started = STARTED.get_or_init(Instant::now);
    metrics::gauge!(UPTIME_SECONDS).set(started.elapsed().as_secs_f64());
    if let Some(rss) = resident_memory_bytes() {
        metrics::gauge!(RESIDENT_MEMORY_BYTES).set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!(OPEN_FDS).set(fds.count() as f64);
    }
}

/// `VmRSS` of `/proc/self/status` (Linux only; `None` elsewhere).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The `method` label: the standard methods by name, anything else `other` (a client choosing
/// arbitrary method names must not grow the series without bound).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// Middleware recording [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_DURATION_SECONDS`]. Applied
/// with `Router::layer`, so the matched route pattern is in the request extensions; requests no
/// route matched are labelled `unmatched` (keeping the label set bounded).
#[derive(Debug, Clone, Copy)]
pub struct RecordMetrics;

/// A request's labels and start, until its response.
#[derive(Debug)]
pub struct Started {
    method: &'static str,
    path: Option<MatchedPath>,
    at: Instant,
}

impl Middleware for RecordMetrics {
    type Carry = Started;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Started> {
        ControlFlow::Continue(Started {
            method: method_label(request.method()),
            path: request.extensions().get::<MatchedPath>().cloned(),
            at: Instant::now(),
        })
    }

    fn after(&self, started: Started, response: Response) -> Response {
        let path = started
            .path
            .as_ref()
            .map_or("unmatched", MatchedPath::as_str);
        let labels = [
            ("method", started.method.to_owned()),
            ("path", path.to_owned()),
            ("status", response.status().as_u16().to_string()),
        ];
        metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
        metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels)
            .record(started.at.elapsed().as_secs_f64());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn resident_memory_is_read_on_linux() {
        assert!(resident_memory_bytes().is_some_and(|bytes| bytes > 0));
    }

    #[test]
    fn unknown_methods_fold_into_other() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
    }
}
