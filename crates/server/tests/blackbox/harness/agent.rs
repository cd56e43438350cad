//! A minimal A2A agent on loopback for the benchmarks: an axum server in the calling process that
//! answers every `message/send` with one text part after a fixed delay. (The tests use the real
//! a2a-sdk agent; a benchmark needs one whose own cost is negligible and known.)

use std::time::Duration;

use serde_json::{Value, json};

use super::TestServer;

/// Starts an agent answering after `delay`; returns its base URL.
pub async fn start(delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: axum::Json<Value>| async move {
            tokio::time::sleep(delay).await;
            axum::Json(json!({"jsonrpc": "2.0", "id": body["id"], "result": {
                "kind": "message", "role": "agent", "messageId": "m",
                "parts": [{"kind": "text", "text": "ok"}]}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://localhost:{port}")
}

/// A bare HTTP hop to `target`: each POST's body forwarded as is and the answer handed back,
/// nothing else (no auth, no parsing, no record). The floor of any proxy's cost on one machine.
pub async fn start_forwarder(target: &str) -> String {
    let client = reqwest::Client::new();
    let target = format!("{target}/");
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            let answer = client
                .post(&target)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match answer {
                Ok(answer) => match answer.bytes().await {
                    Ok(bytes) => Ok(([("content-type", "application/json")], bytes)),
                    Err(_) => Err(axum::http::StatusCode::BAD_GATEWAY),
                },
                Err(_) => Err(axum::http::StatusCode::BAD_GATEWAY),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://localhost:{port}")
}

/// Creates a workspace named `name` and registers the agent at `url` for it; returns its id.
pub async fn registered_workspace(server: &TestServer, name: &str, url: &str) -> String {
    let (_, created) = server.post("/workspaces", &json!({"name": name})).await;
    let id = created["id"].as_str().expect("a workspace").to_string();
    let card = json!({"name": name});
    let body = json!({"id": id, "url": format!("{url}/"), "agent_card": card});
    let (status, answer) = server.post("/registry/register", &body).await;
    assert!(status.is_success(), "{answer}");
    id
}
