//! Helpers shared by the API's integration tests: an `AppState` over a test database and
//! temporary folders, and one-shot requests against the real router.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use api::liveness::{Liveness, SchemaStatus};
use api::{ApiConfig, AppState, Services};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

/// A configuration for tests: dev mode (workspace auth passes without a token), folders under
/// `dir`, a generous rate limit and the default 1 MiB file limit.
pub fn test_config(dir: &Path) -> ApiConfig {
    ApiConfig {
        molecule_env: "development".into(),
        configs_dir: dir.join("configs"),
        workspaces_dir: dir.join("workspaces"),
        org_templates_dir: dir.join("org-templates"),
        rate_limit: 1_000_000,
        max_file_bytes: 1024 * 1024,
        git_sha: "dev".into(),
        version: "test".into(),
        ..ApiConfig::default()
    }
}

/// An `AppState` over `db` with `config`.
pub fn test_state(db: PgPool, config: ApiConfig) -> AppState {
    AppState::new(test_services(db, config))
}

/// The parts of [`test_state`], for a test that replaces one of them.
pub fn test_services(db: PgPool, config: ApiConfig) -> Services {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    Services {
        db: db.into(),
        provisioning: api::provisioner::Provisioning::from_config(&config.provisioner),
        config: Arc::new(config),
        metrics,
        liveness: Liveness::default(),
        schema: SchemaStatus::migrated(),
        crypto: Arc::new(store::crypto::Crypto::disabled()),
        events: api::events_hub::EventsHub::default(),
        eic: None,
        messaging: api::messaging::Messaging::default(),
    }
}

/// The router of `state` (every route, every layer).
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// A response: status, raw body, and the body parsed as JSON (`Value::Null` when it is not).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
    pub json: Value,
}

/// Sends one request; `body` is sent as JSON when given.
pub async fn send(app: &Router, method: &str, uri: &str, body: Option<&Value>) -> Reply {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    send_raw(app, method, uri, bytes).await
}

/// Sends one request with a raw body (for malformed or oversized bodies).
pub async fn send_raw(app: &Router, method: &str, uri: &str, body: Vec<u8>) -> Reply {
    send_raw_with(app, method, uri, &[], body).await
}

/// Sends one request with extra headers (`Authorization`, `Origin`, …); `body` is sent as JSON
/// when given.
pub async fn send_with(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    send_raw_with(app, method, uri, headers, bytes).await
}

/// Sends one request with extra headers and a raw body.
pub async fn send_raw_with(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    // JSON unless the caller names its own content type (a multipart upload).
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body)).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let streams = headers
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    let bytes = if streams {
        // An event stream does not end: its first frame is the answer.
        let mut body = response.into_body();
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame()).await;
        let frame = frame.expect("a first frame").expect("a frame").unwrap();
        frame.into_data().unwrap_or_default()
    } else {
        response.into_body().collect().await.unwrap().to_bytes()
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// Inserts a workspace row directly (the files tests need no more than the row).
pub async fn insert_workspace(
    db: &PgPool,
    name: &str,
    runtime: &str,
    instance_id: Option<&str>,
) -> uuid::Uuid {
    sqlx::query_scalar::<_, uuid::Uuid>(
        "INSERT INTO workspaces (name, runtime, instance_id) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(runtime)
    .bind(instance_id)
    .fetch_one(db)
    .await
    .unwrap()
}

/// Asserts an error answer: this status and exactly `{"error": message}`.
pub fn assert_error(reply: &Reply, status: StatusCode, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(
        reply.json,
        serde_json::json!({ "error": message }),
        "{}",
        reply.text
    );
}

/// Inserts a workspace named `name` under `parent` (a root when `None`).
pub async fn insert_child_workspace(
    db: &PgPool,
    name: &str,
    parent: Option<uuid::Uuid>,
) -> uuid::Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name, parent_id) VALUES ($1, $2) RETURNING id")
        .bind(name)
        .bind(parent)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The router over `db` with [`test_config`] (dev mode: workspace routes need no token).
pub fn dev_app(db: &PgPool) -> Router {
    let dir = tempfile::tempdir().unwrap();
    app(test_state(db.clone(), test_config(dir.path())))
}

/// A state over `db` with `config` whose hub is listening (the listener has ticked once it has
/// issued `LISTEN`); cancel the token to stop it.
pub async fn listening_state(
    db: &PgPool,
    config: ApiConfig,
) -> (AppState, tokio_util::sync::CancellationToken) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut services = test_services(db.clone(), config);
    services.events = api::events_hub::EventsHub::new(shutdown.clone());
    let state = AppState::new(services);
    state
        .events
        .spawn_listener(db.clone(), state.liveness.clone());
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !state
            .liveness
            .snapshot()
            .contains_key(api::events_hub::LIVENESS_NAME)
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the hub starts listening");
    (state, shutdown)
}
