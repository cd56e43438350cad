//! Chat attachments and delegations with the real a2a-sdk agent (`tests/agents/echo_agent.py`):
//! an upload streamed to a push-mode agent, a poll-mode agent fetching and acking its staged
//! file, and a delegation completed through the proxy, then one recorded and swept.

use std::time::Duration;

use crate::a2a_agents::dev_server_with_workspace;
use crate::harness::TestServer;
use crate::harness::sdk_agent::{Agent, WAIT};
use serde_json::{Value, json};

const BOUNDARY: &str = "blackboxboundary7";

async fn upload(server: &TestServer, id: &str, name: &str, content: &str) -> (u16, Value) {
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\
         Content-Type: text/plain\r\n\r\n{content}\r\n--{BOUNDARY}--\r\n"
    );
    let reply = reqwest::Client::new()
        .post(server.url(&format!("/workspaces/{id}/chat/uploads")))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// The agent's next line that has `key`.
async fn line_with(agent: &mut Agent, key: &str) -> Value {
    loop {
        let line = agent.next_line().await;
        if line.get(key).is_some() {
            return line;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_reaches_a_push_mode_agent() {
    let (server, id) = dev_server_with_workspace("Uploader").await;
    let mut agent = Agent::start(&server, &id, "push").await;
    let (status, answer) = upload(&server, &id, "notes 1.txt", "the quarterly notes").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["files"][0]["name"], "notes 1.txt");
    assert!(
        answer["files"][0]["uri"]
            .as_str()
            .unwrap()
            .starts_with("workspace:")
    );
    let line = line_with(&mut agent, "uploaded").await;
    assert_eq!(line["content"], "the quarterly notes");
    assert_eq!(line["size"], 19);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_mode_agent_fetches_and_acks_an_upload() {
    let (server, id) = dev_server_with_workspace("Poller").await;
    let mut agent = Agent::start(&server, &id, "poll").await;
    let (status, answer) = upload(&server, &id, "brief.txt", "read me").await;
    assert_eq!(status, 200, "{answer}");
    let uri = answer["files"][0]["uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with(&format!("platform-pending:{id}/")), "{uri}");
    let line = line_with(&mut agent, "fetched").await;
    assert_eq!(line["fetched"], "brief.txt");
    assert_eq!(line["content"], "read me");
    assert_eq!(line["acked"], 200);
    // Acked: no longer served.
    let file_id = uri.rsplit('/').next().unwrap();
    let (status, body) = server
        .get(&format!(
            "/workspaces/{id}/pending-uploads/{file_id}/content"
        ))
        .await;
    assert_eq!(status, 404, "{body}");
}

async fn eventually(server: &TestServer, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let (_, body) = server.get(path).await;
            if check(&body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} never matched"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegation_is_answered_by_the_agent_and_a_stale_one_swept() {
    let server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("DELEGATION_SWEEPER_INTERVAL_S", "1")
        .start()
        .await;
    let (_, lead) = server.post("/workspaces", &json!({"name": "Lead"})).await;
    let (_, worker) = server.post("/workspaces", &json!({"name": "Worker"})).await;
    let (lead, worker) = (lead["id"].as_str().unwrap(), worker["id"].as_str().unwrap());
    let _agent = Agent::start(&server, worker, "push").await;

    let (status, delegated) = server
        .post(
            &format!("/workspaces/{lead}/delegate"),
            &json!({"target_id": worker, "task": "summarise"}),
        )
        .await;
    assert_eq!(status, 202, "{delegated}");
    let id = delegated["delegation_id"].as_str().unwrap().to_string();
    let rows = eventually(
        &server,
        &format!("/workspaces/{lead}/delegations"),
        |rows| {
            rows.as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["status"] == "completed" && r["delegation_id"] == id.as_str())
            })
        },
    )
    .await;
    let result = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["response_preview"].is_string())
        .unwrap();
    assert_eq!(result["response_preview"], "echo: summarise");

    // One the agent sent itself and never finished: past its deadline, the sweeper fails it.
    let (status, _) = server
        .post(
            &format!("/workspaces/{lead}/delegations/record"),
            &json!({"target_id": worker, "task": "forgotten", "delegation_id": "stale-1"}),
        )
        .await;
    assert_eq!(status, 202);
    let pool = server.pool().await.expect("a fresh database");
    sqlx::query("UPDATE delegations SET deadline = now() - interval '1 second' WHERE delegation_id = 'stale-1'")
        .execute(&pool)
        .await
        .unwrap();
    let failed = eventually(&server, "/admin/delegations?status=failed", |body| {
        body["count"] == 1
    })
    .await;
    assert_eq!(failed["delegations"][0]["delegation_id"], "stale-1");
    assert_eq!(
        failed["delegations"][0]["error_detail"],
        "deadline exceeded by sweeper"
    );
}
