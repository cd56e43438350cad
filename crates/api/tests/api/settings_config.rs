//! `GET|PATCH /workspaces/{id}/config` (a shallow-merged JSON document) and
//! `GET /workspaces/{id}/transcript` (a checked proxy to the agent's own `/transcript`).

use crate::common::{app, insert_workspace, send, send_raw, send_with, test_config, test_state};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn config_merges_top_level_keys(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/config");
    assert_eq!(
        send(&app, "GET", &url, None).await.json,
        json!({"data": {}})
    );

    let first = json!({"a": 1, "nested": {"x": 1, "y": 2}});
    let reply = send(&app, "PATCH", &url, Some(&first)).await;
    assert_eq!(reply.json, json!({"status": "updated"}));
    send(
        &app,
        "PATCH",
        &url,
        Some(&json!({"nested": {"x": 9}, "b": null})),
    )
    .await;
    assert_eq!(
        send(&app, "GET", &url, None).await.json,
        json!({"data": {"a": 1, "nested": {"x": 9}, "b": null}})
    );

    let reply = send_raw(&app, "PATCH", &url, b"{not json".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json, json!({"error": "invalid JSON"}));
    for body in [&b""[..], b"[1]", b"\"text\""] {
        let reply = send_raw(&app, "PATCH", &url, body.to_vec()).await;
        assert_eq!(reply.json, json!({"error": "invalid JSON"}), "{body:?}");
    }
    let big = format!("{{\"k\":\"{}\"}}", "x".repeat(256 * 1024));
    let reply = send_raw(&app, "PATCH", &url, big.into_bytes()).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json, json!({"error": "body too large or unreadable"}));
    let ghost = format!("/workspaces/{}/config", Uuid::new_v4());
    let reply = send(&app, "PATCH", &ghost, Some(&json!({"a": 1}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&app, "GET", &ghost, None).await.json,
        json!({"data": {}})
    );
    let reply = send(&app, "GET", "/workspaces/nope/config", None).await;
    assert_eq!(reply.json, json!({"error": "invalid workspace ID"}));
}

async fn set_card_url(db: &PgPool, id: Uuid, card: Value) {
    sqlx::query("UPDATE workspaces SET agent_card = $2 WHERE id = $1")
        .bind(id)
        .bind(card)
        .execute(db)
        .await
        .unwrap();
}

/// An agent whose `/transcript` echoes the query and bearer it received.
async fn fake_agent() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    async fn transcript(uri: Uri, headers: HeaderMap) -> axum::Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        axum::Json(json!({"query": uri.query(), "authorization": auth}))
    }
    let agent = axum::Router::new().route("/transcript", get(transcript));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, agent).await.unwrap();
    });
    (address, task)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn transcript_forwards_only_since_limit_and_the_callers_bearer(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let (address, agent) = fake_agent().await;
    set_card_url(&db, id, json!({"url": format!("http://{address}/a2a?x=1")})).await;

    let token = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    let auth = format!("Bearer {token}");
    let reply = send_with(
        &app,
        "GET",
        &format!("/workspaces/{id}/transcript?since=5&limit=2&evil=1"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"query": "since=5&limit=2", "authorization": auth})
    );
    agent.abort();
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn transcript_refuses_missing_unsafe_and_unreachable_urls(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/workspaces/{id}/transcript");
    let check = |status: StatusCode, error: &'static str| (status, json!({ "error": error }));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let cases = [
        (
            json!({}),
            check(StatusCode::NOT_FOUND, "workspace not found"),
        ),
        (
            json!({"url": ""}),
            check(
                StatusCode::SERVICE_UNAVAILABLE,
                "workspace not registered (no URL on file)",
            ),
        ),
        (
            json!({"url": "::not a url"}),
            check(StatusCode::BAD_REQUEST, "invalid workspace URL"),
        ),
        (
            json!({"url": "file:///etc/passwd"}),
            check(StatusCode::BAD_REQUEST, "workspace URL not allowed"),
        ),
        (
            json!({"url": "http://169.254.169.254/"}),
            check(StatusCode::BAD_REQUEST, "workspace URL not allowed"),
        ),
        (
            json!({"url": "http://METADATA.google.internal/"}),
            check(StatusCode::BAD_REQUEST, "workspace URL not allowed"),
        ),
        (
            json!({"url": "http://[fd00::1]:80/"}),
            check(StatusCode::BAD_REQUEST, "workspace URL not allowed"),
        ),
        (
            json!({"url": format!("http://{closed}/")}),
            check(StatusCode::BAD_GATEWAY, "workspace unreachable"),
        ),
    ];
    for (card, (status, body)) in cases {
        set_card_url(&db, id, card.clone()).await;
        let reply = send(&app, "GET", &url, None).await;
        assert_eq!((reply.status, reply.json), (status, body), "{card}");
    }
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{}/transcript", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
