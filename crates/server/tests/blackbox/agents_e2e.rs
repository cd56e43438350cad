//! The Go original's end-to-end flow (`tests/e2e/test_api.sh`) against our binary: two
//! workspaces, test tokens, registration, heartbeats, degraded and back, agent cards, discovery,
//! peers, access checks, events, activity, `current_task`, delete. Assertions are substring
//! checks on the compact JSON, as the script's `grep -F` does; the canvas's live stream is watched
//! throughout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::TestServer;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Bounds every wait for something the server does in the background.
const WAIT: Duration = Duration::from_secs(30);

/// One request; the answer's status and raw body.
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
    caller: Option<&str>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.client.request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(caller) = caller {
        request = request.header("X-Workspace-ID", caller);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `check` of test_api.sh: the body contains `expected`.
#[track_caller]
fn check(description: &str, expected: &str, actual: &str) {
    assert!(
        actual.contains(expected),
        "{description}: expected to contain {expected}\n  got: {actual}"
    );
}

fn count(body: &str) -> usize {
    serde_json::from_str::<Value>(body)
        .unwrap()
        .as_array()
        .expect("a JSON array")
        .len()
}

fn field(body: &str, name: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .to_string()
}

/// Collects every frame the canvas's socket receives.
fn watch(
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Arc<Mutex<Vec<Value>>> {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    tokio::spawn(async move {
        let mut socket = socket;
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

#[tokio::test]
async fn the_originals_end_to_end_flow() {
    // As the original's CI: no MOLECULE_ENV, no ADMIN_TOKEN (test tokens on, AdminAuth tier 3).
    let server = TestServer::start().await;
    let ws_url = server.base_url.replace("http://", "ws://") + "/ws";
    let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("the canvas subscribes");
    let frames = watch(socket);

    let (_, r) = raw(&server, "GET", "/health", None, None, None).await;
    check("GET /health", r#""status":"ok""#, &r);
    let (_, r) = raw(&server, "GET", "/workspaces", None, None, None).await;
    check("GET /workspaces (empty)", "[]", &r);

    let (_, r) = raw(
        &server,
        "POST",
        "/workspaces",
        Some(&json!({"name": "Echo Agent", "tier": 1})),
        None,
        None,
    )
    .await;
    check(
        "POST /workspaces (create echo)",
        r#""status":"provisioning""#,
        &r,
    );
    let echo = field(&r, "id");
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/admin/workspaces/{echo}/test-token"),
        None,
        None,
        None,
    )
    .await;
    let echo_token = field(&r, "auth_token");
    let bearer = Some(echo_token.as_str());

    let (_, r) = raw(
        &server,
        "POST",
        "/workspaces",
        Some(&json!({"name": "Summarizer Agent", "tier": 1})),
        bearer,
        None,
    )
    .await;
    check(
        "POST /workspaces (create summarizer)",
        r#""status":"provisioning""#,
        &r,
    );
    let sum = field(&r, "id");
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/admin/workspaces/{sum}/test-token"),
        None,
        None,
        None,
    )
    .await;
    let sum_token = field(&r, "auth_token");
    let sum_bearer = Some(sum_token.as_str());

    let (_, r) = raw(&server, "GET", "/workspaces", None, bearer, None).await;
    assert_eq!(count(&r), 2, "GET /workspaces (count=2)");
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("GET /workspaces/:id", r#""name":"Echo Agent""#, &r);
    check(
        "GET /workspaces/:id (agent_card null)",
        r#""agent_card":null"#,
        &r,
    );

    // Registration: the test tokens exist, so each agent presents its own.
    let echo_card = json!({"name": "Echo Agent", "skills": [{"id": "echo", "name": "Echo"}]});
    let register = json!({"id": echo, "url": "http://localhost:8001", "agent_card": echo_card});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/register",
        Some(&register),
        None,
        None,
    )
    .await;
    check(
        "POST /registry/register without the token",
        "missing workspace auth token",
        &r,
    );
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/register",
        Some(&register),
        bearer,
        None,
    )
    .await;
    check(
        "POST /registry/register (echo)",
        r#""status":"registered""#,
        &r,
    );
    assert!(!r.contains("auth_token"), "no second token: {r}");
    let sum_card =
        json!({"name": "Summarizer", "skills": [{"id": "summarize", "name": "Summarize"}]});
    let register_sum = json!({"id": sum, "url": "http://localhost:8002", "agent_card": sum_card});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/register",
        Some(&register_sum),
        sum_bearer,
        None,
    )
    .await;
    check(
        "POST /registry/register (summarizer)",
        r#""status":"registered""#,
        &r,
    );

    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("Echo is online", r#""status":"online""#, &r);
    check("Echo has agent_card", r#""skills""#, &r);
    check("Echo has url", r#""url":"http://localhost:8001""#, &r);

    let beat = json!({"workspace_id": echo, "error_rate": 0.0, "sample_error": "", "active_tasks": 2, "uptime_seconds": 120});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&beat),
        bearer,
        None,
    )
    .await;
    check("POST /registry/heartbeat", r#""status":"ok""#, &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("Heartbeat updated active_tasks", r#""active_tasks":2"#, &r);
    check("Heartbeat updated uptime", r#""uptime_seconds":120"#, &r);

    let (_, r) = raw(
        &server,
        "GET",
        &format!("/registry/discover/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check(
        "GET /registry/discover/:id (missing caller rejected)",
        "X-Workspace-ID header is required",
        &r,
    );
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/registry/discover/{echo}"),
        None,
        sum_bearer,
        Some(&sum),
    )
    .await;
    check("GET /registry/discover/:id (sibling)", r#""url""#, &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/registry/{echo}/peers"),
        None,
        bearer,
        None,
    )
    .await;
    check(
        "GET /registry/:id/peers (has summarizer)",
        r#""Summarizer"#,
        &r,
    );
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/registry/{sum}/peers"),
        None,
        sum_bearer,
        None,
    )
    .await;
    check("GET /registry/:id/peers (has echo)", r#""Echo Agent""#, &r);
    let access = json!({"caller_id": echo, "target_id": sum});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/check-access",
        Some(&access),
        None,
        None,
    )
    .await;
    check(
        "POST /registry/check-access (siblings allowed)",
        r#""allowed":true"#,
        &r,
    );

    let (_, r) = raw(
        &server,
        "PATCH",
        &format!("/workspaces/{echo}"),
        Some(&json!({"x": 100, "y": 200})),
        bearer,
        None,
    )
    .await;
    check(
        "PATCH /workspaces/:id (position)",
        r#""status":"updated""#,
        &r,
    );
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("Position saved (x=100)", r#""x":100"#, &r);
    check("Position saved (y=200)", r#""y":200"#, &r);

    let (_, r) = raw(&server, "GET", "/events", None, bearer, None).await;
    check("GET /events (has events)", "WORKSPACE_ONLINE", &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/events/{echo}"),
        None,
        bearer,
        None,
    )
    .await;
    check(
        "GET /events/:id (has events for echo)",
        "WORKSPACE_ONLINE",
        &r,
    );
    assert!(!r.contains(&sum), "only echo's events: {r}");

    let card_v2 = json!({"name": "Echo Agent v2", "skills": [{"id": "echo", "name": "Echo"}, {"id": "repeat", "name": "Repeat"}]});
    let update = json!({"workspace_id": echo, "agent_card": card_v2});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/update-card",
        Some(&update),
        bearer,
        None,
    )
    .await;
    check("POST /registry/update-card", r#""status":"updated""#, &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("The new card is served", r#""id":"repeat""#, &r);

    let high = json!({"workspace_id": echo, "error_rate": 0.8, "sample_error": "API rate limit", "active_tasks": 0, "uptime_seconds": 200});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&high),
        bearer,
        None,
    )
    .await;
    check("Heartbeat (high error_rate)", r#""status":"ok""#, &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("Status degraded", r#""status":"degraded""#, &r);
    let low = json!({"workspace_id": echo, "error_rate": 0.0, "sample_error": "", "active_tasks": 0, "uptime_seconds": 300});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&low),
        bearer,
        None,
    )
    .await;
    check("Heartbeat (recovered)", r#""status":"ok""#, &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("Status back online", r#""status":"online""#, &r);

    // Activity.
    let activity = format!("/workspaces/{echo}/activity");
    let reports = [
        json!({"activity_type": "agent_log", "method": "inference", "summary": "Processing user query"}),
        json!({"activity_type": "a2a_send", "method": "message/send", "summary": "Sent to summarizer", "target_id": sum, "duration_ms": 150}),
        json!({"activity_type": "error", "summary": "Connection timeout", "status": "error", "error_detail": "dial tcp: timeout after 30s"}),
        json!({"activity_type": "task_update", "method": "start", "summary": "Started data analysis"}),
    ];
    for report in &reports {
        let (_, r) = raw(&server, "POST", &activity, Some(report), bearer, None).await;
        check("POST /workspaces/:id/activity", r#""status":"logged""#, &r);
    }
    let (status, r) = raw(
        &server,
        "POST",
        &activity,
        Some(&json!({"activity_type": "bad_type", "summary": "test"})),
        bearer,
        None,
    )
    .await;
    assert_eq!(status, 400);
    check(
        "POST activity (invalid type → 400)",
        "invalid activity_type",
        &r,
    );
    let (_, r) = raw(&server, "GET", &activity, None, bearer, None).await;
    assert_eq!(count(&r), 4, "GET /workspaces/:id/activity (has entries)");
    let (_, r) = raw(
        &server,
        "GET",
        &format!("{activity}?type=error"),
        None,
        bearer,
        None,
    )
    .await;
    assert_eq!(count(&r), 1, "GET activity?type=error (count=1)");
    check("GET activity?type=error (has error_detail)", "dial tcp", &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("{activity}?type=a2a_send"),
        None,
        bearer,
        None,
    )
    .await;
    assert_eq!(count(&r), 1, "GET activity?type=a2a_send (count=1)");
    check("GET activity?type=a2a_send (has target_id)", &sum, &r);
    let (_, r) = raw(
        &server,
        "GET",
        &format!("{activity}?limit=2"),
        None,
        bearer,
        None,
    )
    .await;
    assert_eq!(count(&r), 2, "GET activity?limit=2 (capped)");
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{sum}/activity"),
        None,
        sum_bearer,
        None,
    )
    .await;
    assert_eq!(r, "[]", "GET activity (empty for summarizer)");

    // current_task: stored from heartbeats, shown in the admin list, kept out of the public GET.
    let busy = json!({"workspace_id": echo, "error_rate": 0.0, "sample_error": "", "active_tasks": 1, "uptime_seconds": 400, "current_task": "Analyzing document"});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&busy),
        bearer,
        None,
    )
    .await;
    check("Heartbeat with current_task", r#""status":"ok""#, &r);
    let (_, r) = raw(&server, "GET", "/workspaces", None, bearer, None).await;
    check(
        "current_task in list response",
        r#""current_task":"Analyzing document""#,
        &r,
    );
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("active_tasks updated", r#""active_tasks":1"#, &r);
    assert!(
        !r.contains(r#""current_task":"#),
        "the public GET strips current_task: {r}"
    );
    let idle = json!({"workspace_id": echo, "error_rate": 0.0, "sample_error": "", "active_tasks": 0, "uptime_seconds": 500, "current_task": ""});
    raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&idle),
        bearer,
        None,
    )
    .await;
    let (_, r) = raw(&server, "GET", "/workspaces", None, bearer, None).await;
    check("current_task cleared", r#""current_task":"""#, &r);

    let (_, r) = raw(
        &server,
        "DELETE",
        &format!("/workspaces/{echo}"),
        None,
        bearer,
        None,
    )
    .await;
    check("DELETE /workspaces/:id", r#""status":"removed""#, &r);
    let (_, r) = raw(&server, "GET", "/workspaces", None, sum_bearer, None).await;
    assert_eq!(count(&r), 1, "List after delete (count=1)");
    // A late heartbeat from the torn-down agent does not resurrect it.
    let (status, _) = raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&beat),
        bearer,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, 410);

    // The canvas's socket heard the whole story, in the original's message shape.
    let expected = [
        "WORKSPACE_PROVISIONING",
        "WORKSPACE_ONLINE",
        "WORKSPACE_HEARTBEAT",
        "AGENT_CARD_UPDATED",
        "WORKSPACE_DEGRADED",
        "ACTIVITY_LOGGED",
        "TASK_UPDATED",
        "WORKSPACE_REMOVED",
    ];
    let heard = tokio::time::timeout(WAIT, async {
        loop {
            let kinds: Vec<String> = frames
                .lock()
                .unwrap()
                .iter()
                .map(|f| f["event"].as_str().unwrap_or_default().to_string())
                .collect();
            if expected.iter().all(|e| kinds.iter().any(|k| k == e)) {
                return kinds;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let frames = frames.lock().unwrap().clone();
    assert!(
        heard.is_ok(),
        "the canvas heard {expected:?}; got {frames:?}"
    );
    let removed = frames
        .iter()
        .find(|f| f["event"] == "WORKSPACE_REMOVED")
        .unwrap();
    let keys: Vec<&String> = removed.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["event", "payload", "timestamp", "workspace_id"]);
    assert_eq!(removed["workspace_id"], echo.as_str());
    assert!(removed["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn silent_agents_go_offline_and_come_back() {
    let server = TestServer::builder()
        .env("REMOTE_LIVENESS_STALE_AFTER", "1s")
        .start()
        .await;
    let (_, r) = raw(
        &server,
        "POST",
        "/workspaces",
        Some(&json!({"name": "Echo"})),
        None,
        None,
    )
    .await;
    let echo = field(&r, "id");
    let register =
        json!({"id": echo, "url": "http://localhost:8001", "agent_card": {"name": "Echo"}});
    let (_, r) = raw(
        &server,
        "POST",
        "/registry/register",
        Some(&register),
        None,
        None,
    )
    .await;
    let token = field(&r, "auth_token");

    let offline = tokio::time::timeout(WAIT, async {
        loop {
            let (_, r) = raw(
                &server,
                "GET",
                &format!("/workspaces/{echo}"),
                None,
                None,
                None,
            )
            .await;
            if r.contains(r#""status":"offline""#) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        offline.is_ok(),
        "the workspace went offline after its heartbeats stopped"
    );
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/events/{echo}"),
        None,
        Some(&token),
        None,
    )
    .await;
    check("WORKSPACE_OFFLINE recorded", "WORKSPACE_OFFLINE", &r);
    let (_, r) = raw(&server, "GET", "/admin/liveness", None, Some(&token), None).await;
    check("the monitor reports in", r#""liveness-monitor""#, &r);
    check("the hub reports in", r#""events-hub""#, &r);

    let beat = json!({"workspace_id": echo});
    raw(
        &server,
        "POST",
        "/registry/heartbeat",
        Some(&beat),
        Some(&token),
        None,
    )
    .await;
    let (_, r) = raw(
        &server,
        "GET",
        &format!("/workspaces/{echo}"),
        None,
        None,
        None,
    )
    .await;
    check("a heartbeat brings it back", r#""status":"online""#, &r);
}
