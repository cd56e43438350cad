//! The live event stream: inserts and announcements reach the hub through PostgreSQL
//! `LISTEN/NOTIFY`, and `GET /ws` delivers them to the canvas (everything) and to agents (what
//! the hierarchy lets them see).

use crate::common;

use std::time::Duration;

use api::AppState;
use api::events_hub::LiveEvent;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Bounds every wait so a missing event fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

/// A state whose hub is listening.
async fn listening_state(db: &PgPool) -> (AppState, CancellationToken) {
    common::listening_state(db, common::test_config(&std::env::temp_dir())).await
}

pub(crate) async fn next_of(
    events: &mut broadcast::Receiver<std::sync::Arc<LiveEvent>>,
    kind: &str,
) -> LiveEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("hub open");
            if event.event == kind {
                return (*event).clone();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event within {WAIT:?}"))
}

async fn workspace(db: &PgPool, name: &str, parent: Option<Uuid>) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name, parent_id) VALUES ($1, $2) RETURNING id")
        .bind(name)
        .bind(parent)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Posts JSON; returns the status and the body as JSON.
async fn post(
    app: &axum::Router,
    uri: &str,
    body: Value,
    bearer: Option<&str>,
) -> (axum::http::StatusCode, Value) {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::post(uri).header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn recorded_and_announced_events_reach_subscribers(db: PgPool) {
    let (state, shutdown) = listening_state(&db).await;
    let mut events = state.events.subscribe();
    let app = common::app(state.clone());
    let id = workspace(&db, "Echo", None).await;

    let card = json!({ "name": "Echo" });
    let reply = post(
        &app,
        "/registry/register",
        json!({ "id": id, "url": "http://localhost:8001", "agent_card": card }),
        None,
    )
    .await;
    let token = reply.1["auth_token"].as_str().unwrap().to_string();
    let online = next_of(&mut events, "WORKSPACE_ONLINE").await;
    assert_eq!(online.workspace_id, id.to_string());
    assert_eq!(
        online.payload,
        json!({ "agent_card": card, "delivery_mode": "push", "url": "http://localhost:8001" })
    );

    let beat = json!({ "workspace_id": id, "active_tasks": 2, "uptime_seconds": 120, "current_task": "Reading" });
    post(&app, "/registry/heartbeat", beat, Some(&token)).await;
    let task = next_of(&mut events, "TASK_UPDATED").await;
    assert_eq!(
        task.payload,
        json!({ "active_tasks": 2, "current_task": "Reading" })
    );
    let load = next_of(&mut events, "WORKSPACE_HEARTBEAT").await;
    assert_eq!(
        load.payload,
        json!({ "active_tasks": 2, "uptime_seconds": 120 })
    );
    assert_eq!(
        serde_json::to_string(&load).unwrap(),
        format!(
            r#"{{"event":"WORKSPACE_HEARTBEAT","workspace_id":"{id}","timestamp":"{}","payload":{{"active_tasks":2,"uptime_seconds":120}}}}"#,
            api::json::format_go_time(&load.timestamp)
        )
    );

    // Too large for a NOTIFY payload: announced by id, fetched by the hub, delivered whole.
    let big = json!({ "name": "Echo", "description": "x".repeat(20_000) });
    post(
        &app,
        "/registry/update-card",
        json!({ "workspace_id": id, "agent_card": big }),
        Some(&token),
    )
    .await;
    let updated = next_of(&mut events, "AGENT_CARD_UPDATED").await;
    assert_eq!(updated.payload, json!({ "agent_card": big }));

    let activity = json!({ "activity_type": "agent_log", "summary": "hello" });
    let uri = format!("/workspaces/{id}/activity");
    assert_eq!(post(&app, &uri, activity, Some(&token)).await.0, 200);
    let logged = next_of(&mut events, "ACTIVITY_LOGGED").await;
    assert_eq!(logged.payload["summary"], "hello");
    assert_eq!(logged.payload["source_id"], id.to_string());
    shutdown.cancel();
}

/// Serves the router on a loopback port.
async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("ws://{address}/ws")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    url: &str,
    agent: Option<(Uuid, &str)>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if let Some((id, token)) = agent {
        request
            .headers_mut()
            .insert("x-workspace-id", id.to_string().parse().unwrap());
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The next text frame whose event is `kind` (any event for `""`), or `None` when none arrives
/// within `wait`.
async fn frame_of(socket: &mut Socket, kind: &str, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).unwrap();
                if kind.is_empty() || value["event"] == kind {
                    return Some(value);
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_socket_gives_the_canvas_everything_and_agents_their_part_of_the_tree(db: PgPool) {
    let (state, shutdown) = listening_state(&db).await;
    let url = serve(state.clone()).await;
    let parent = workspace(&db, "Parent", None).await;
    let child = workspace(&db, "Child", Some(parent)).await;
    let stranger = workspace(&db, "Stranger", Some(child)).await;
    let cousin = workspace(&db, "Cousin", None).await;
    let cousin_child = workspace(&db, "Cousin child", Some(cousin)).await;
    let child_token = store::tokens::mint_workspace_token(&db, child)
        .await
        .unwrap();
    let _ = stranger;

    let mut canvas = connect(&url, None)
        .await
        .expect("the canvas connects without credentials");
    let mut agent = connect(&url, Some((child, &child_token)))
        .await
        .expect("an agent connects with its token");
    assert!(
        connect(&url, Some((child, "forged"))).await.is_err(),
        "a forged token is refused before the upgrade"
    );

    // The events are recorded after both sockets are subscribed; the canvas hears both, the agent
    // only its parent's.
    store::events::record(
        &db,
        "WORKSPACE_PROVISIONING",
        Some(cousin_child),
        &json!({ "name": "x" }),
    )
    .await
    .unwrap();
    store::events::record(&db, "WORKSPACE_ONLINE", Some(parent), &json!({}))
        .await
        .unwrap();
    let first = frame_of(&mut canvas, "WORKSPACE_PROVISIONING", WAIT)
        .await
        .expect("canvas gets every event");
    assert_eq!(first["workspace_id"], cousin_child.to_string());
    assert!(
        frame_of(&mut canvas, "WORKSPACE_ONLINE", WAIT)
            .await
            .is_some()
    );
    let seen = frame_of(&mut agent, "WORKSPACE_ONLINE", WAIT)
        .await
        .expect("the agent sees its parent");
    assert_eq!(seen["workspace_id"], parent.to_string());
    // An unrelated event is withheld: the agent's next frame is about its parent again.
    store::events::record(&db, "WORKSPACE_DEGRADED", Some(cousin_child), &json!({}))
        .await
        .unwrap();
    store::events::record(&db, "WORKSPACE_REMOVED", Some(parent), &json!({}))
        .await
        .unwrap();
    let next = frame_of(&mut agent, "", WAIT)
        .await
        .expect("the agent's next frame");
    assert_eq!(
        (next["event"].as_str(), next["workspace_id"].as_str()),
        (Some("WORKSPACE_REMOVED"), Some(parent.to_string().as_str()))
    );

    // Shutdown closes the sockets.
    shutdown.cancel();
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = canvas.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket closes on shutdown");
    let _ = agent.close(None).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_hub_reconnects_after_losing_its_connection(db: PgPool) {
    let (state, shutdown) = listening_state(&db).await;
    let mut events = state.events.subscribe();
    // Kill the listening backend; the hub must listen again and deliver later events.
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND datname = current_database()")
        .execute(&db)
        .await
        .unwrap();
    let id = workspace(&db, "Echo", None).await;
    let delivered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            store::events::record(&db, "PING", Some(id), &json!({}))
                .await
                .unwrap();
            match tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
                Ok(Ok(event)) if event.event == "PING" => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(delivered.is_ok(), "events flow again after the reconnect");
    shutdown.cancel();
}
