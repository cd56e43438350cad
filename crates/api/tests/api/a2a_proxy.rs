//! `POST /workspaces/{id}/a2a` against real PostgreSQL and a scripted agent on loopback: what is
//! forwarded and answered, the rows and events a call leaves, the faults (hanging, unreadable,
//! refusing, failing agents), who may call, the address rules, and streamed answers relayed as
//! they arrive.

use crate::common;
use crate::events_stream::next_of;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{ApiConfig, AppState};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tower::ServiceExt;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// What the scripted agent received, and a gate its streaming route waits on.
#[derive(Clone, Default)]
struct Agent {
    received: Arc<Mutex<Vec<(String, Value)>>>,
    gate: Arc<Notify>,
}

/// The scripted agent: `/echo` answers like an A2A agent (with usage and a tool trace),
/// `/hang` never answers, `/garbage` answers text, `/boom` fails, `/stream` streams two events
/// with the gate between them. Returns its base URL.
async fn start_agent(agent: Agent) -> String {
    let record = |path: &'static str, agent: Agent| {
        move |body: Bytes| {
            let agent = agent.clone();
            async move {
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                agent
                    .received
                    .lock()
                    .unwrap()
                    .push((path.to_string(), json.clone()));
                (agent, json)
            }
        }
    };
    let echo = record("echo", agent.clone());
    let hang = record("hang", agent.clone());
    let garbage = record("garbage", agent.clone());
    let boom = record("boom", agent.clone());
    let stream = record("stream", agent.clone());
    let app = Router::new()
        .route("/echo", post(move |b: Bytes| async move {
            let (_, json) = echo(b).await;
            let text = json.pointer("/params/message/parts/0/text").cloned().unwrap_or(Value::Null);
            axum::Json(json!({"jsonrpc": "2.0", "id": json["id"], "result": {
                "kind": "message", "role": "agent", "parts": [{"kind": "text", "text": text}],
                "metadata": {"tool_trace": [{"tool": "echo"}]},
                "usage": {"input_tokens": 100, "output_tokens": 20}}}))
        }))
        .route("/hang", post(move |b: Bytes| async move {
            hang(b).await;
            std::future::pending::<()>().await;
        }))
        .route("/garbage", post(move |b: Bytes| async move {
            garbage(b).await;
            "this is not JSON"
        }))
        .route("/boom", post(move |b: Bytes| async move {
            boom(b).await;
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "model crashed"})))
        }))
        .route("/stream", post(move |b: Bytes| async move {
            let (agent, _) = stream(b).await;
            let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            tokio::spawn(async move {
                let first = "data: {\"jsonrpc\":\"2.0\",\"result\":{\"kind\":\"status-update\",\"final\":false}}\n\n";
                sender.send(Ok(Bytes::from(first))).await.unwrap();
                agent.gate.notified().await;
                let last = "data: {\"jsonrpc\":\"2.0\",\"result\":{\"kind\":\"status-update\",\"final\":true}}\n\n";
                let _ = sender.send(Ok(Bytes::from(last))).await;
            });
            let chunks = futures_util::stream::unfold(receiver, |mut r| async move {
                r.recv().await.map(|c| (c, r))
            });
            ([("content-type", "text/event-stream")], Body::from_stream(chunks)).into_response()
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn config(idle: Duration) -> ApiConfig {
    ApiConfig {
        a2a_idle_window: idle,
        ..common::test_config(&std::env::temp_dir())
    }
}

async fn workspace(db: &PgPool, name: &str, url: Option<&str>, parent: Option<Uuid>) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO workspaces (name, url, parent_id, status) VALUES ($1, $2, $3, 'online') RETURNING id",
    )
    .bind(name)
    .bind(url)
    .bind(parent)
    .fetch_one(db)
    .await
    .unwrap()
}

fn canvas_message(text: &str) -> Value {
    json!({"method": "message/send", "params": {"message": {"role": "user", "messageId": Uuid::new_v4(),
        "parts": [{"kind": "text", "text": text}]}}})
}

async fn a2a(
    state: &AppState,
    target: Uuid,
    body: &Value,
    headers: &[(&str, &str)],
) -> common::Reply {
    let app = common::app(state.clone());
    common::send_with(
        &app,
        "POST",
        &format!("/workspaces/{target}/a2a"),
        headers,
        Some(body),
    )
    .await
}

/// Waits for the `n`th activity row of a workspace (the proxy writes them in the background).
async fn activity_rows(
    db: &PgPool,
    workspace: Uuid,
    n: usize,
) -> Vec<(String, String, Option<String>, Option<Value>)> {
    tokio::time::timeout(WAIT, async {
        loop {
            let rows: Vec<(String, String, Option<String>, Option<Value>)> = sqlx::query_as(
                "SELECT summary, status, error_detail, tool_trace FROM activity_logs
                 WHERE workspace_id = $1 ORDER BY created_at",
            )
            .bind(workspace)
            .fetch_all(db)
            .await
            .unwrap();
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("activity rows are written")
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_canvas_message_reaches_the_agent_and_its_answer_comes_back(db: PgPool) {
    let agent = Agent::default();
    let base = start_agent(agent.clone()).await;
    let (state, shutdown) = common::listening_state(&db, config(Duration::ZERO)).await;
    let target = workspace(&db, "Echo", Some(&format!("{base}/echo")), None).await;
    let mut events = state.events.subscribe();
    let mut activity = state.events.subscribe();

    let reply = a2a(
        &state,
        target,
        &canvas_message("hello"),
        &[("authorization", "Bearer forwarded?")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["result"]["parts"][0]["text"], "hello");
    assert_eq!(
        reply.headers["content-type"],
        "application/json; charset=utf-8"
    );
    // The agent received a JSON-RPC envelope, without the caller's credentials.
    let (_, sent) = agent.received.lock().unwrap()[0].clone();
    assert_eq!(sent["jsonrpc"], "2.0");
    assert_eq!(sent["method"], "message/send");

    let response = next_of(&mut events, "A2A_RESPONSE").await;
    assert_eq!(response.workspace_id, target.to_string());
    assert_eq!(response.payload["method"], "message/send");
    assert_eq!(
        response.payload["response_body"]["result"]["parts"][0]["text"],
        "hello"
    );
    let logged = next_of(&mut activity, "ACTIVITY_LOGGED").await;
    assert_eq!(
        logged.payload["request_body"]["params"]["message"]["parts"][0]["text"],
        "hello"
    );

    let rows = activity_rows(&db, target, 1).await;
    assert_eq!(rows[0].0, "message/send → Echo");
    assert_eq!(rows[0].1, "ok");
    assert_eq!(rows[0].3, Some(json!([{"tool": "echo"}])));
    let usage = tokio::time::timeout(WAIT, async {
        loop {
            let row: Option<(i64, i64, i32)> = sqlx::query_as(
                "SELECT input_tokens, output_tokens, call_count FROM workspace_token_usage WHERE workspace_id = $1",
            )
            .bind(target)
            .fetch_optional(&db)
            .await
            .unwrap();
            if let Some(row) = row {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("token usage is recorded");
    assert_eq!(usage, (100, 20, 1));
    shutdown.cancel();
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_requests_and_targets_are_refused_before_any_call(db: PgPool) {
    let agent = Agent::default();
    let base = start_agent(agent.clone()).await;
    let state = common::test_state(db.clone(), config(Duration::ZERO));
    let target = workspace(&db, "Echo", Some(&format!("{base}/echo")), None).await;
    let app = common::app(state.clone());
    let uri = format!("/workspaces/{target}/a2a");

    let invalid = common::send_raw(&app, "POST", &uri, b"[1,2]".to_vec()).await;
    assert_eq!(
        (invalid.status, invalid.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid JSON"))
    );
    let no_parts = json!({"method": "message/send", "params": {"message": {"role": "user"}}});
    let reply = a2a(&state, target, &no_parts, &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json["hint"]
            .as_str()
            .unwrap()
            .starts_with("v0.3 example")
    );
    let oversized = common::send_raw(&app, "POST", &uri, vec![b' '; 1024 * 1024 + 1]).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);

    let unknown = a2a(&state, Uuid::new_v4(), &canvas_message("x"), &[]).await;
    assert_eq!(
        (unknown.status, unknown.json["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("workspace not found"))
    );
    let no_url = workspace(&db, "Nowhere", None, None).await;
    let reply = a2a(&state, no_url, &canvas_message("x"), &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json,
        json!({"error": "workspace has no URL", "status": "online"})
    );

    sqlx::query("UPDATE workspaces SET budget_limit = 100, monthly_spend = 100 WHERE id = $1")
        .bind(target)
        .execute(&db)
        .await
        .unwrap();
    let reply = a2a(&state, target, &canvas_message("x"), &[]).await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::PAYMENT_REQUIRED,
            Some("workspace budget limit exceeded")
        )
    );
    assert!(
        agent.received.lock().unwrap().is_empty(),
        "nothing reached the agent"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn loopback_agents_are_refused_outside_dev_mode(db: PgPool) {
    let agent = Agent::default();
    let base = start_agent(agent.clone()).await;
    let strict = ApiConfig {
        molecule_env: "production".into(),
        admin_token: Some("admin".into()),
        ..config(Duration::ZERO)
    };
    let state = common::test_state(db.clone(), strict);
    let target = workspace(&db, "Local", Some(&format!("{base}/echo")), None).await;
    let reply = a2a(&state, target, &canvas_message("x"), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json["error"],
        "workspace URL is not publicly routable"
    );
    assert!(
        agent.received.lock().unwrap().is_empty(),
        "never a request to a refused address"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_hanging_agent_times_out_and_its_request_is_queued(db: PgPool) {
    let base = start_agent(Agent::default()).await;
    let state = common::test_state(db.clone(), config(Duration::from_millis(300)));
    let target = workspace(&db, "Slow", Some(&format!("{base}/hang")), None).await;
    let message = canvas_message("take your time");

    let reply = a2a(&state, target, &message, &[]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json["queued"], true);
    assert_eq!(reply.json["queue_depth"], 1);
    let rows = activity_rows(&db, target, 1).await;
    assert_eq!(rows[0].1, "error");
    assert!(
        rows[0].2.as_deref().unwrap().starts_with("idle timeout"),
        "{:?}",
        rows[0].2
    );
    // The same message retried is queued once.
    let again = a2a(&state, target, &message, &[]).await;
    assert_eq!(again.json["queue_id"], reply.json["queue_id"]);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM a2a_queue WHERE workspace_id = $1")
        .bind(target)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(queued, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn faulty_agents_answer_clear_errors(db: PgPool) {
    let base = start_agent(Agent::default()).await;
    let state = common::test_state(db.clone(), config(Duration::ZERO));

    let garbage = workspace(&db, "Garbage", Some(&format!("{base}/garbage")), None).await;
    let reply = a2a(&state, garbage, &canvas_message("x"), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json["error"], "workspace agent returned invalid JSON");

    let boom = workspace(&db, "Boom", Some(&format!("{base}/boom")), None).await;
    let reply = a2a(&state, boom, &canvas_message("x"), &[]).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.json, json!({"error": "model crashed"}));
    assert_eq!(activity_rows(&db, boom, 1).await[0].1, "error");

    // Nothing listens there: the workspace is marked offline.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let gone = workspace(&db, "Gone", Some(&url), None).await;
    let reply = a2a(&state, gone, &canvas_message("x"), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json["error"], "failed to reach workspace agent");
    let status: String = sqlx::query_scalar("SELECT status::text FROM workspaces WHERE id = $1")
        .bind(gone)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "offline");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM structure_events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_OFFLINE'",
    )
    .bind(gone)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(recorded, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn peers_must_prove_who_they_are_and_respect_the_hierarchy(db: PgPool) {
    let base = start_agent(Agent::default()).await;
    let state = common::test_state(db.clone(), config(Duration::ZERO));
    let url = format!("{base}/echo");
    let parent = workspace(&db, "Parent", Some(&url), None).await;
    let child = workspace(&db, "Child", Some(&url), Some(parent)).await;
    let other_root = workspace(&db, "Other", Some(&url), None).await;
    let cousin = workspace(&db, "Cousin", Some(&url), Some(other_root)).await;
    let token = store::tokens::mint_workspace_token(&db, child)
        .await
        .unwrap();
    let child_header = child.to_string();

    let reserved = a2a(
        &state,
        parent,
        &canvas_message("x"),
        &[("x-workspace-id", "system:cron")],
    )
    .await;
    assert_eq!(
        (reserved.status, reserved.json["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("invalid caller ID"))
    );
    let missing = a2a(
        &state,
        parent,
        &canvas_message("x"),
        &[("x-workspace-id", &child_header)],
    )
    .await;
    assert_eq!(
        (missing.status, missing.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing caller auth token"))
    );
    let bearer = format!("Bearer {token}");
    let as_child = [
        ("x-workspace-id", child_header.as_str()),
        ("authorization", bearer.as_str()),
    ];
    assert_eq!(
        a2a(&state, parent, &canvas_message("x"), &as_child)
            .await
            .status,
        StatusCode::OK
    );
    // The bearer alone names the caller.
    let by_token = a2a(
        &state,
        cousin,
        &canvas_message("x"),
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(by_token.status, StatusCode::FORBIDDEN);
    assert_eq!(
        by_token.json["error"],
        "access denied: workspaces cannot communicate per hierarchy rules"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_poll_mode_target_gets_the_request_in_its_inbox(db: PgPool) {
    let state = common::test_state(db.clone(), config(Duration::ZERO));
    let target = workspace(&db, "Poller", None, None).await;
    sqlx::query("UPDATE workspaces SET delivery_mode = 'poll' WHERE id = $1")
        .bind(target)
        .execute(&db)
        .await
        .unwrap();
    let reply = a2a(&state, target, &canvas_message("for later"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.text,
        r#"{"delivery_mode":"poll","method":"message/send","status":"queued"}"#
    );
    let rows = activity_rows(&db, target, 1).await;
    assert_eq!(rows[0].0, "message/send → Poller (queued for poll)");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_streamed_answer_is_relayed_as_it_arrives(db: PgPool) {
    let agent = Agent::default();
    let base = start_agent(agent.clone()).await;
    let state = common::test_state(db.clone(), config(Duration::ZERO));
    let target = workspace(&db, "Streamer", Some(&format!("{base}/stream")), None).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "message/stream", "params": {"message": {
        "role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "go"}]}}});
    let request = Request::post(format!("/workspaces/{target}/a2a"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = common::app(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The first event arrives while the agent is still holding back the second.
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(first.data_ref().unwrap()).contains("\"final\":false"));
    agent.gate.notify_one();
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("\"final\":true"));
    let rows = activity_rows(&db, target, 1).await;
    assert_eq!(rows[0].0, "message/stream → Streamer");
}
