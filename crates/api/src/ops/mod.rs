//! Operations endpoints: liveness, readiness, build info and Prometheus metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use sqlx::Connection;
use utoipa::ToSchema;

use crate::AppState;
use crate::middleware::metrics::{
    DB_POOL_CONNECTIONS, DB_POOL_IDLE_CONNECTIONS, DB_POOL_MAX_CONNECTIONS,
};

/// How long `/ready` waits for the database to answer.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(1);

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// `ready` with every check `ok`, or `unavailable` naming the failing one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub checks: BTreeMap<&'static str, &'static str>,
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BuildInfo {
    pub git_sha: String,
    pub version: String,
}

/// `GET /health`: liveness only; checks no dependency.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /ready`: 200 when the database answers a ping within 1 s and the schema is migrated,
/// else 503 naming the failing check. In production, `storage: ephemeral` when the workspaces'
/// files are not on a mounted volume.
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, description = "Database answers and schema migrated", body = Readiness),
    (status = 503, description = "A check failed", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database = database_check(&state).await;
    let (status, summary) = if database == "ok" {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let mut checks = BTreeMap::from([("database", database)]);
    // A report, not a failure: local workspaces' files on the container's own layer are lost
    // at the next restart.
    if state.config.ephemeral_storage {
        checks.insert("storage", "ephemeral");
    }
    let body = Readiness {
        checks,
        status: summary,
    };
    (status, Json(body))
}

/// `ok`, or a short reason for the client; the driver's error goes to the log only.
async fn database_check(state: &AppState) -> &'static str {
    let ping = async {
        match state.db.try_acquire() {
            Some(mut connection) => connection.ping().await,
            // A saturated (or still empty) pool says nothing about the database: the probe
            // opens a connection of its own rather than queue behind the requests.
            None => {
                let options = state.db.connect_options();
                let mut connection = sqlx::PgConnection::connect_with(&options).await?;
                connection.ping().await?;
                connection.close().await
            }
        }
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
#[utoipa::path(get, path = "/buildinfo", tag = "ops",
    responses((status = 200, description = "Build", body = BuildInfo)))]
pub async fn buildinfo(State(state): State<AppState>) -> Json<BuildInfo> {
    Json(BuildInfo {
        git_sha: state.config.git_sha.clone(),
        version: state.config.version.clone(),
    })
}

/// `GET /metrics`: Prometheus text. The pool gauges are sampled now, at scrape time.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!(DB_POOL_CONNECTIONS).set(f64::from(state.db.size()));
    metrics::gauge!(DB_POOL_IDLE_CONNECTIONS).set(state.db.num_idle() as f64);
    metrics::gauge!(DB_POOL_MAX_CONNECTIONS).set(f64::from(state.db.max_connections()));
    crate::middleware::metrics::record_process(&state.config.version, &state.config.git_sha);
    crate::middleware::metrics::record_liveness(&state.liveness);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
