//! The messaging routes around the proxy against real PostgreSQL: the activity inbox cursor and
//! filters, `notify`, the busy queue drained by heartbeats, its status route and the operators'
//! drop of stale requests.

use crate::common;
use crate::events_stream::next_of;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::value::to_raw_value;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

async fn workspace(db: &PgPool, name: &str, url: Option<&str>) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO workspaces (name, url, status) VALUES ($1, $2, 'online') RETURNING id",
    )
    .bind(name)
    .bind(url)
    .fetch_one(db)
    .await
    .unwrap()
}

/// Inserts `n` rows at the same instant and one a second later; returns their ids in cursor order.
async fn inbox_rows(db: &PgPool, id: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar(
        "WITH t AS (SELECT now() - interval '1 minute' AS at)
         INSERT INTO activity_logs (workspace_id, activity_type, summary, created_at, source_id)
         SELECT $1, 'a2a_receive', 'm' || g, t.at + CASE WHEN g = 4 THEN interval '1 second' ELSE interval '0' END,
                CASE WHEN g = 2 THEN $1 END
         FROM generate_series(1, 4) g, t
         RETURNING id",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_since_id_cursor_reads_each_row_once_even_at_equal_times(db: PgPool) {
    let state = common::test_state(db.clone(), common::test_config(&std::env::temp_dir()));
    let app = common::app(state);
    let id = workspace(&db, "Inbox", None).await;
    inbox_rows(&db, id).await;
    let uri = |query: &str| format!("/workspaces/{id}/activity?{query}");

    let newest_first = common::send(&app, "GET", &uri("type=a2a_receive"), None).await;
    let all: Vec<Value> = newest_first.json.as_array().unwrap().clone();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["summary"], "m4");
    // Walk the inbox one row at a time from the oldest: every row exactly once.
    let oldest = all.last().unwrap()["id"].as_str().unwrap().to_string();
    let mut cursor = oldest.clone();
    let mut read = vec![oldest];
    loop {
        let page = common::send(
            &app,
            "GET",
            &uri(&format!("since_id={cursor}&limit=1")),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let Some(row) = page.json.as_array().unwrap().first() else {
            break;
        };
        cursor = row["id"].as_str().unwrap().to_string();
        read.push(cursor.clone());
    }
    let mut expected: Vec<String> = all
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    read.sort();
    assert_eq!(read, expected);

    let gone = common::send(
        &app,
        "GET",
        &uri(&format!("since_id={}", Uuid::new_v4())),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(
        gone.json["error"]
            .as_str()
            .unwrap()
            .starts_with("since_id cursor not found")
    );
    let canvas = common::send(&app, "GET", &uri("source=canvas"), None).await;
    assert_eq!(canvas.json.as_array().unwrap().len(), 3);
    let peer = common::send(&app, "GET", &uri(&format!("peer_id={id}")), None).await;
    assert_eq!(peer.json.as_array().unwrap().len(), 1);
    let recent = common::send(&app, "GET", &uri("since_secs=5"), None).await;
    assert_eq!(recent.json, json!([]));
    for (query, message) in [
        ("peer_id=x", "peer_id must be a UUID"),
        (
            "before_ts=yesterday",
            "before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)",
        ),
        ("since_secs=0", "since_secs must be a positive integer"),
        ("source=robot", "source must be 'canvas' or 'agent'"),
    ] {
        let reply = common::send(&app, "GET", &uri(query), None).await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(message))
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn notify_reaches_the_canvas_and_the_chat_history(db: PgPool) {
    let (state, shutdown) =
        common::listening_state(&db, common::test_config(&std::env::temp_dir())).await;
    let app = common::app(state.clone());
    let id = workspace(&db, "Writer", None).await;
    let mut events = state.events.subscribe();
    let body = json!({"message": "Done", "attachments": [{"uri": "workspace:/r.pdf", "name": "r.pdf", "mimeType": "application/pdf", "size": 12}]});
    let reply = common::send(
        &app,
        "POST",
        &format!("/workspaces/{id}/notify"),
        Some(&body),
    )
    .await;
    assert_eq!(reply.text, r#"{"status":"sent"}"#);
    let event = next_of(&mut events, "AGENT_MESSAGE").await;
    assert_eq!(event.payload["message"], "Done");
    assert_eq!(event.payload["name"], "Writer");
    assert_eq!(event.payload["attachments"][0]["uri"], "workspace:/r.pdf");
    let row: (String, Value) = sqlx::query_as(
        "SELECT summary, response_body FROM activity_logs WHERE workspace_id = $1 AND method = 'notify'",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(row.0, "Agent message: Done");
    assert_eq!(row.1["parts"][0]["file"]["name"], "r.pdf");

    let bad = json!({"message": "x", "attachments": [{"uri": "u"}]});
    let reply = common::send(
        &app,
        "POST",
        &format!("/workspaces/{id}/notify"),
        Some(&bad),
    )
    .await;
    assert_eq!(
        reply.json["error"],
        "attachment[0]: uri and name are required"
    );
    let reply = common::send(
        &app,
        "POST",
        &format!("/workspaces/{id}/notify"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(reply.json["error"], "message is required");
    let reply = common::send(
        &app,
        "POST",
        &format!("/workspaces/{}/notify", Uuid::new_v4()),
        Some(&json!({"message": "x"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    shutdown.cancel();
}

async fn queue_status(db: &PgPool, queue_id: &str) -> (String, i32) {
    sqlx::query_as("SELECT status, attempts FROM a2a_queue WHERE id = $1::uuid")
        .bind(queue_id)
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_heartbeat_with_spare_capacity_sends_the_queued_request(db: PgPool) {
    // An agent that answers once it is free: the first call times out, the drained one answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let agent = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                axum::Json(
                    json!({"jsonrpc": "2.0", "id": 1, "result": {"kind": "message", "parts": []}}),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, agent).await.unwrap() });
    let config = api::ApiConfig {
        a2a_idle_window: Duration::from_millis(300),
        ..common::test_config(&std::env::temp_dir())
    };
    let state = common::test_state(db.clone(), config);
    let app = common::app(state);
    let id = workspace(&db, "Busy", Some(&format!("http://{address}/"))).await;

    let message = json!({"method": "message/send", "params": {"message": {"parts": [{"kind": "text", "text": "hi"}]}}});
    let queued = common::send(
        &app,
        "POST",
        &format!("/workspaces/{id}/a2a"),
        Some(&message),
    )
    .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    let queue_id = queued.json["queue_id"].as_str().unwrap().to_string();

    // The target follows its queue; another workspace does not see it.
    let status_uri = format!("/workspaces/{id}/a2a/queue/{queue_id}");
    let own = common::send_with(
        &app,
        "GET",
        &status_uri,
        &[("x-workspace-id", &id.to_string())],
        None,
    )
    .await;
    assert_eq!(
        (own.status, &own.json["status"]),
        (StatusCode::OK, &json!("queued")),
        "{}",
        own.text
    );
    let stranger = common::send_with(
        &app,
        "GET",
        &status_uri,
        &[("x-workspace-id", &Uuid::new_v4().to_string())],
        None,
    )
    .await;
    assert_eq!(stranger.json["error"], "queue item not found");

    let beat = json!({"workspace_id": id, "active_tasks": 0});
    let reply = common::send(&app, "POST", "/registry/heartbeat", Some(&beat)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let drained = tokio::time::timeout(WAIT, async {
        loop {
            let (status, attempts) = queue_status(&db, &queue_id).await;
            if status == "completed" {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the heartbeat drains the queue");
    assert_eq!(drained, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn operators_drop_requests_that_waited_too_long(db: PgPool) {
    let state = common::test_state(db.clone(), common::test_config(&std::env::temp_dir()));
    let app = common::app(state);
    let id = workspace(&db, "Stale", None).await;
    sqlx::query(
        "INSERT INTO a2a_queue (workspace_id, body, enqueued_at)
         VALUES ($1, '{}', now() - interval '2 hours'), ($1, '{}', now())",
    )
    .bind(id)
    .execute(&db)
    .await
    .unwrap();
    let bad = common::send(
        &app,
        "POST",
        "/admin/a2a-queue/drop-stale?max_age_minutes=0",
        None,
    )
    .await;
    assert_eq!(
        bad.json["error"],
        "max_age_minutes must be a positive integer"
    );
    let reply = common::send(&app, "POST", "/admin/a2a-queue/drop-stale", None).await;
    assert_eq!(reply.text, r#"{"dropped":1}"#);
    let note: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM a2a_queue WHERE status = 'dropped'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        note.unwrap()
            .starts_with("[DropStaleQueueItems] auto-dropped")
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_announcement_too_large_for_notify_is_delivered_whole(db: PgPool) {
    let (state, shutdown) =
        common::listening_state(&db, common::test_config(&std::env::temp_dir())).await;
    let id = workspace(&db, "Big", None).await;
    let mut events = state.events.subscribe();
    let payload = json!({"response_body": "y".repeat(1024 * 1024)});
    store::events::announce(&db, "A2A_RESPONSE", id, &to_raw_value(&payload).unwrap())
        .await
        .unwrap();
    let event = next_of(&mut events, "A2A_RESPONSE").await;
    assert_eq!(event.payload, payload);
    assert_eq!(event.workspace_id, id.to_string());
    shutdown.cancel();
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_event_stream_carries_the_workspaces_events_only(db: PgPool) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let (state, shutdown) =
        common::listening_state(&db, common::test_config(&std::env::temp_dir())).await;
    let id = workspace(&db, "Streamed", None).await;
    let other = workspace(&db, "Other", None).await;
    let request = axum::http::Request::get(format!("/workspaces/{id}/events/stream"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = common::app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut next = async || {
        let frame = tokio::time::timeout(WAIT, body.frame()).await.unwrap();
        String::from_utf8(frame.unwrap().unwrap().into_data().unwrap().to_vec()).unwrap()
    };
    assert_eq!(next().await, ": ping\n\n");
    for (workspace, text) in [(other, "not mine"), (id, "mine")] {
        store::events::announce(
            &db,
            "AGENT_MESSAGE",
            workspace,
            &to_raw_value(&json!({"message": text})).unwrap(),
        )
        .await
        .unwrap();
    }
    let line = next().await;
    let event: Value = serde_json::from_str(line.strip_prefix("data: ").unwrap().trim()).unwrap();
    assert_eq!(event["type"], "AGENT_MESSAGE");
    assert_eq!(event["data"], json!({"message": "mine"}));
    assert!(event["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    let missing = common::send(
        &common::app(state),
        "GET",
        &format!("/workspaces/{}/events/stream", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    shutdown.cancel();
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn chat_history_pairs_each_message_with_its_answer(db: PgPool) {
    let state = common::test_state(db.clone(), common::test_config(&std::env::temp_dir()));
    let app = common::app(state);
    let id = workspace(&db, "Chat", None).await;
    let request = json!({"params": {"message": {"parts": [{"kind": "text", "text": "hello"}]}}});
    let answer = json!({"result": {"parts": [{"kind": "text", "text": "hi there"}]}});
    sqlx::query(
        "INSERT INTO activity_logs (workspace_id, activity_type, request_body, response_body, created_at)
         VALUES ($1, 'a2a_receive', $2, $3, now() - interval '1 minute'),
                ($1, 'a2a_receive', NULL, '{\"result\":\"Agent message: done\"}', now()),
                ($1, 'a2a_receive', $2, NULL, now())",
    )
    .bind(id)
    .bind(&request)
    .bind(&answer)
    .execute(&db)
    .await
    .unwrap();
    let reply = common::send(
        &app,
        "GET",
        &format!("/workspaces/{id}/chat-history?limit=10"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["reached_end"], true);
    let messages = reply.json["messages"].as_array().unwrap();
    let said: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(said.len(), 4, "{said:?}");
    assert_eq!(&said[2..], [("user", "hello"), ("agent", "hi there")]);
    let page = common::send(
        &app,
        "GET",
        &format!("/workspaces/{id}/chat-history?limit=1"),
        None,
    )
    .await;
    assert_eq!(page.json["reached_end"], false);
    let bad = common::send(
        &app,
        "GET",
        &format!("/workspaces/{id}/chat-history?before_ts=x"),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
