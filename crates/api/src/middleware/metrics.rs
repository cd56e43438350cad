//! HTTP metrics: one counter and one duration histogram per method, matched route pattern and
//! status (series names kept from the Go original where it had them).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Requests answered, by `method`, `path` (the route pattern, or `unmatched`) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "molecule_http_requests_total";
/// Time to the response head in seconds, same labels as [`HTTP_REQUESTS_TOTAL`].
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "molecule_http_request_duration_seconds";
/// Connections the database pool holds (in use or idle), set when `/metrics` is scraped.
pub const DB_POOL_CONNECTIONS: &str = "molecule_db_pool_connections";
/// Idle connections of the database pool, set when `/metrics` is scraped.
pub const DB_POOL_IDLE_CONNECTIONS: &str = "molecule_db_pool_idle_connections";

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
}

/// Middleware recording [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_DURATION_SECONDS`]. Applied
/// with `Router::layer`, so the matched route pattern is in the request extensions; requests no
/// route matched are labelled `unmatched` (keeping the label set bounded).
pub async fn record(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("path", path),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
