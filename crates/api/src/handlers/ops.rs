//! Operations endpoints: liveness, readiness, build info and Prometheus metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::AppState;
use crate::middleware::metrics::{DB_POOL_CONNECTIONS, DB_POOL_IDLE_CONNECTIONS};

/// How long `/ready` waits for the database to answer.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /health`: liveness only; checks no dependency.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when the database answers a ping within 1 s and the schema is migrated,
/// else 503 naming the failing check.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database = database_check(&state).await;
    if database == "ok" {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": { "database": "ok" } })),
        )
    } else {
        let body = json!({ "status": "unavailable", "checks": { "database": database } });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

/// `ok`, or a short reason for the client; the driver's error goes to the log only.
async fn database_check(state: &AppState) -> &'static str {
    let ping = async {
        let mut connection = state.db.acquire().await?;
        connection.ping().await
    };
    match tokio::time::timeout(READY_DB_TIMEOUT, ping).await {
        Err(_) => "no answer within 1s",
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness: database ping failed");
            "unreachable"
        }
        Ok(Ok(())) if !state.schema.is_migrated() => "migrations pending",
        Ok(Ok(())) => "ok",
    }
}

/// `GET /buildinfo`: the git sha baked in at build time (`dev` when unknown) and the version.
pub async fn buildinfo(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "git_sha": state.config.git_sha, "version": state.config.version }))
}

/// `GET /metrics`: Prometheus text. The pool gauges are sampled now, at scrape time.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!(DB_POOL_CONNECTIONS).set(f64::from(state.db.size()));
    metrics::gauge!(DB_POOL_IDLE_CONNECTIONS).set(state.db.num_idle() as f64);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
