//! The conversation end to end with a real A2A agent built on the official `a2a-sdk`
//! (`tests/agents/echo_agent.py`), started on loopback and registering itself: the canvas's call
//! through the proxy to the agent and its answer as `A2A_RESPONSE` on `/ws`; the agent's `notify`
//! as `AGENT_MESSAGE`; a poll-mode agent reading its inbox with a `since_id` cursor, each message
//! once; a schedule's prompt fired by the firing loop through the proxy to the agent, and its run
//! recorded.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::TestServer;
use crate::harness::sdk_agent::{Agent, WAIT};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Every frame the canvas's socket receives.
pub(crate) async fn canvas(server: &TestServer) -> Arc<Mutex<Vec<Value>>> {
    let url = server.base_url.replace("http://", "ws://") + "/ws";
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&text).unwrap());
            }
        }
    });
    frames
}

pub(crate) async fn frame(
    frames: &Arc<Mutex<Vec<Value>>>,
    event: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let found = frames
                .lock()
                .unwrap()
                .iter()
                .find(|f| f["event"] == event && matches(f))
                .cloned();
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {event} frame within {WAIT:?}"))
}

fn message(text: &str) -> Value {
    json!({"method": "message/send", "params": {"message": {"role": "user",
        "messageId": uuid::Uuid::new_v4(), "parts": [{"kind": "text", "text": text}]}}})
}

pub(crate) async fn dev_server_with_workspace(name: &str) -> (TestServer, String) {
    let server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .start()
        .await;
    let (status, created) = server.post("/workspaces", &json!({"name": name})).await;
    assert!(status.is_success(), "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    (server, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_canvas_talks_to_a_real_agent_through_the_proxy() {
    let (server, id) = dev_server_with_workspace("Echo").await;
    let frames = canvas(&server).await;
    let _agent = Agent::start(&server, &id, "push").await;

    let (status, answer) = server
        .post(&format!("/workspaces/{id}/a2a"), &message("hello"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.to_string().contains("echo: hello"), "{answer}");
    let response = frame(&frames, "A2A_RESPONSE", |f| {
        f["workspace_id"] == id.as_str()
    })
    .await;
    assert!(
        response["payload"]["response_body"]
            .to_string()
            .contains("echo: hello")
    );
    assert_eq!(response["payload"]["method"], "message/send");

    let (status, _) = server
        .post(
            &format!("/workspaces/{id}/a2a"),
            &message("notify: the report is ready"),
        )
        .await;
    assert_eq!(status, 200);
    let pushed = frame(&frames, "AGENT_MESSAGE", |_| true).await;
    assert_eq!(pushed["payload"]["message"], "the report is ready");
    assert_eq!(pushed["payload"]["name"], "Echo");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_mode_agent_reads_each_message_once() {
    let (server, id) = dev_server_with_workspace("Poller").await;
    let frames = canvas(&server).await;
    let mut agent = Agent::start(&server, &id, "poll").await;

    let texts = ["first", "second", "third"];
    for text in texts {
        let (status, receipt) = server
            .post(&format!("/workspaces/{id}/a2a"), &message(text))
            .await;
        assert_eq!(
            (status.as_u16(), &receipt["status"]),
            (200, &json!("queued")),
            "{receipt}"
        );
    }
    let mut seen = Vec::new();
    let mut ids = HashSet::new();
    while seen.len() < texts.len() {
        let line = agent.next_line().await;
        assert!(ids.insert(line["id"].to_string()), "read twice: {line}");
        seen.push(line["inbox"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, texts, "in order, each once");
    // The agent's answers reach the canvas; its own notify rows never come back to its inbox.
    frame(&frames, "AGENT_MESSAGE", |f| {
        f["payload"]["message"] == "echo: third"
    })
    .await;
    let (status, last) = server
        .post(&format!("/workspaces/{id}/a2a"), &message("fourth"))
        .await;
    assert_eq!(status, 200, "{last}");
    let line = agent.next_line().await;
    assert_eq!(
        line["inbox"], "fourth",
        "nothing was read twice in between: {line}"
    );
}

/// Waits until the server's hub has issued `LISTEN` (only then is no event missed).
async fn hub_listening(server: &TestServer) {
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
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_mebibyte_reply_reaches_the_canvas_on_another_replica() {
    let (first, id) = dev_server_with_workspace("Big").await;
    let url = first.database_url.clone().expect("a fresh database");
    let second = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .database_url(&url)
        .start()
        .await;
    hub_listening(&second).await;
    let frames = canvas(&second).await;
    let _agent = Agent::start(&first, &id, "push").await;

    let size = 1024 * 1024;
    let (status, answer) = first
        .post(
            &format!("/workspaces/{id}/a2a"),
            &message(&format!("big: {size}")),
        )
        .await;
    assert_eq!(status, 200);
    assert!(answer.to_string().len() > size);
    let response = frame(&frames, "A2A_RESPONSE", |f| {
        f["workspace_id"] == id.as_str()
    })
    .await;
    let text = response["payload"]["response_body"].to_string();
    let longest_run = text.split(|c| c != 'x').map(str::len).max().unwrap_or(0);
    assert_eq!(longest_run, size, "the whole reply, not a placeholder");
}

/// The firing loop delivers a due schedule's prompt through the proxy to a real agent (the
/// original's message shape: `message/send`, `messageId` `cron-…`), and records the run: `ok`
/// on the schedule, a `cron_run` history row, a `CRON_EXECUTED` event, and the proxy's
/// `a2a_receive` row with the agent's answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_due_schedule_reaches_a_real_agent_and_its_run_is_recorded() {
    let server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("SCHEDULER_POLL_INTERVAL", "100ms")
        .start()
        .await;
    let (status, created) = server.post("/workspaces", &json!({"name": "Cron"})).await;
    assert!(status.is_success(), "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let _agent = Agent::start(&server, &id, "push").await;
    let schedule = json!({"name": "daily report", "cron_expr": "0 0 1 1 *",
        "prompt": "write the daily report"});
    let (status, created) = server
        .post(&format!("/workspaces/{id}/schedules"), &schedule)
        .await;
    assert_eq!(status, 201, "{created}");
    let schedule_id = created["id"].as_str().unwrap().to_string();
    let pool = server.pool().await.unwrap();
    sqlx::query("UPDATE workspace_schedules SET next_run_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();

    let history = tokio::time::timeout(WAIT, async {
        loop {
            let (status, history) = server
                .get(&format!("/workspaces/{id}/schedules/{schedule_id}/history"))
                .await;
            assert_eq!(status, 200, "{history}");
            if history.as_array().is_some_and(|runs| !runs.is_empty()) {
                return history;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the schedule fires");
    assert_eq!(history[0]["status"], "ok", "{history}");
    assert_eq!(history[0]["request"]["prompt"], "write the daily report");
    let (_, listed) = server.get(&format!("/workspaces/{id}/schedules")).await;
    assert_eq!(listed[0]["last_status"], "ok", "{listed}");
    assert_eq!(listed[0]["run_count"], 1, "{listed}");
    let executed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM structure_events WHERE event_type = 'CRON_EXECUTED'
         AND payload->>'status' = 'ok'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(executed, 1);
    // The agent received the prompt, in the original's shape, and answered it.
    let received: (Value, Value) = tokio::time::timeout(WAIT, async {
        loop {
            let row = sqlx::query_as::<_, (Value, Option<Value>)>(
                "SELECT request_body, response_body FROM activity_logs
                 WHERE activity_type = 'a2a_receive' AND source_id IS NULL
                 AND workspace_id = $1::uuid",
            )
            .bind(&id)
            .fetch_optional(&pool)
            .await
            .unwrap();
            if let Some((request, Some(response))) = row {
                return (request, response);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the proxy logs the call");
    let (request, response) = received;
    assert_eq!(request["method"], "message/send");
    let message = &request["params"]["message"];
    assert_eq!(message["role"], "user");
    assert!(message["messageId"].as_str().unwrap().starts_with("cron-"));
    assert_eq!(message["parts"][0]["text"], "write the daily report");
    assert!(
        response
            .to_string()
            .contains("echo: write the daily report"),
        "{response}"
    );
}
