//! Two server processes on one database, as replicas behind a load balancer: an event caused
//! through either is received by the canvas's socket on the other (PostgreSQL `LISTEN/NOTIFY`).

use std::time::Duration;

use crate::harness::TestServer;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(server: &TestServer) -> Socket {
    // The hub reports in once it has issued LISTEN; only then is no event missed.
    tokio::time::timeout(WAIT, async {
        loop {
            let (_, body) = server.get("/admin/liveness").await;
            if body["subsystems"].get("events-hub").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the replica's hub is listening");
    let url = server.base_url.replace("http://", "ws://") + "/ws";
    tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the canvas subscribes")
        .0
}

/// The first frame for `workspace_id` with event `kind`.
async fn receive(socket: &mut Socket, kind: &str, workspace_id: &str) -> Value {
    tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["event"] == kind && frame["workspace_id"] == workspace_id {
                    return frame;
                }
            }
        }
        panic!("the socket closed");
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} for {workspace_id} within {WAIT:?}"))
}

#[tokio::test]
async fn each_replica_delivers_the_others_events() {
    let first = TestServer::start().await;
    let url = first.database_url.clone().expect("a fresh database");
    let second = TestServer::builder().database_url(&url).start().await;
    let mut on_first = subscribe(&first).await;
    let mut on_second = subscribe(&second).await;

    // Recorded through the first (an insert announced by the trigger) …
    let (status, created) = first.post("/workspaces", &json!({"name": "Echo"})).await;
    assert_eq!(status, 201, "{created}");
    let echo = created["id"].as_str().unwrap().to_string();
    let frame = receive(&mut on_second, "WORKSPACE_PROVISIONING", &echo).await;
    assert_eq!(frame["payload"]["name"], "Echo");

    // … and announced without storing through the second.
    let register =
        json!({"id": echo, "url": "http://localhost:8001", "agent_card": {"name": "Echo"}});
    let (_, registered) = second.post("/registry/register", &register).await;
    let token = registered["auth_token"]
        .as_str()
        .expect("a minted token")
        .to_string();
    receive(&mut on_first, "WORKSPACE_ONLINE", &echo).await;
    let beat = json!({"workspace_id": echo, "active_tasks": 3, "uptime_seconds": 9});
    let (status, _) = second
        .request("POST", "/registry/heartbeat", Some(&beat), Some(&token))
        .await;
    assert_eq!(status, 200);
    let frame = receive(&mut on_first, "WORKSPACE_HEARTBEAT", &echo).await;
    assert_eq!(
        frame["payload"],
        json!({"active_tasks": 3, "uptime_seconds": 9})
    );
    // Each replica's own subscribers hear it too.
    receive(&mut on_second, "WORKSPACE_HEARTBEAT", &echo).await;
}
