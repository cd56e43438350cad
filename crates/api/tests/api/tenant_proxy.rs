//! The tenant's proxies: `/cp/*` to a fake control plane behind the allow-list (checked on the
//! normalised path), unmatched paths to a fake canvas without the caller's credentials, 502 when
//! the upstream is down.

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::any;
use serde_json::{Value, json};

use crate::common::{app, send_with, test_config, test_state};

/// An upstream that answers every request with what it received.
async fn echo_upstream() -> String {
    async fn echo(request: Request) -> axum::Json<Value> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        axum::Json(json!({
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "authorization": header("authorization"),
            "cookie": header("cookie"),
        }))
    }
    let router = Router::new().fallback(any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A URL nothing listens on.
async fn dead_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn credentials() -> Vec<(&'static str, &'static str)> {
    vec![
        ("authorization", "Bearer user-token"),
        ("cookie", "session=abc"),
    ]
}

async fn proxied(cp: Option<String>, canvas: Option<String>) -> Router {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.cp_upstream_url = cp;
    config.canvas_proxy_url = canvas;
    let db = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    app(test_state(db, config))
}

#[tokio::test]
async fn cp_paths_reach_the_control_plane_with_credentials_and_traversal_does_not() {
    let app = proxied(Some(echo_upstream().await), None).await;
    let reply = send_with(&app, "GET", "/cp/auth/me?x=1", &credentials(), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["uri"], "/cp/auth/me?x=1");
    assert_eq!(reply.json["authorization"], "Bearer user-token");
    assert_eq!(reply.json["cookie"], "session=abc");

    for refused in [
        "/cp/../workspaces",
        "/cp/orgs/../admin/tenants",
        "/cp/auth",
        "/cp/admin/x",
        "/cp/orgs/%2e%2e/admin",
    ] {
        let reply = send_with(&app, "GET", refused, &credentials(), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{refused}");
        assert_ne!(reply.json["uri"], json!("/workspaces"), "{refused}");
    }
}

#[tokio::test]
async fn unmatched_paths_reach_the_canvas_without_credentials() {
    let app = proxied(None, Some(echo_upstream().await)).await;
    let reply = send_with(&app, "GET", "/orgs/acme?tab=1", &credentials(), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["uri"], "/orgs/acme?tab=1");
    assert_eq!(reply.json["authorization"], Value::Null);
    assert_eq!(reply.json["cookie"], Value::Null);
    let reply = send_with(&app, "HEAD", "/login", &[], None).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_dead_upstream_is_a_502_with_a_message_and_no_canvas_keeps_the_404() {
    let app = proxied(Some(dead_upstream().await), Some(dead_upstream().await)).await;
    let reply = send_with(&app, "GET", "/cp/auth/me", &[], None).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json, json!({"error": "control plane unavailable"}));
    let reply = send_with(&app, "GET", "/some/page", &[], None).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json, json!({"error": "canvas unavailable"}));

    let app = proxied(None, None).await;
    let reply = send_with(&app, "GET", "/some/page", &[], None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text, "404 page not found");
}
