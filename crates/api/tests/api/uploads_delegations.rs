//! Chat attachments, delegations and the session search against real PostgreSQL, with a small
//! loopback agent standing in for the workspace's `/internal/*` endpoints and its A2A answer:
//! every status and message of the original's contract.

use crate::common::{self, Reply, assert_error, send_raw_with};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const BOUNDARY: &str = "matrixboundary42";

async fn workspace(db: &PgPool, name: &str, url: Option<&str>, mode: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO workspaces (name, url, status, delivery_mode) VALUES ($1, $2, 'online', $3)
         RETURNING id",
    )
    .bind(name)
    .bind(url)
    .bind(mode)
    .fetch_one(db)
    .await
    .unwrap()
}

/// A multipart body with one part per `(field, filename, content type, content)`.
fn multipart(parts: &[(&str, &str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, name, mime, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n")
                .as_bytes(),
        );
        if !mime.is_empty() {
            body.extend_from_slice(format!("Content-Type: {mime}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &Router, id: Uuid, body: Vec<u8>) -> Reply {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    send_raw_with(
        app,
        "POST",
        &format!("/workspaces/{id}/chat/uploads"),
        &[("content-type", content_type.as_str())],
        body,
    )
    .await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_poll_mode_agent_fetches_and_acks_its_staged_files(db: PgPool) {
    let app = common::dev_app(&db);
    let id = workspace(&db, "Poller", None, "poll").await;
    let other = workspace(&db, "Other", None, "poll").await;

    let body = multipart(&[
        (
            "files",
            "my report.pdf",
            "application/pdf; x=1",
            b"%PDF-1.4 hello",
        ),
        ("files", "../notes.txt", "", b"plain notes"),
    ]);
    let reply = upload(&app, id, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let files = reply.json["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "my_report.pdf");
    assert_eq!(files[0]["mimeType"], "application/pdf");
    assert_eq!(files[0]["size"], 14);
    assert_eq!(files[1]["name"], "notes.txt");
    assert_eq!(files[1]["mimeType"], "");
    let uri = files[0]["uri"].as_str().unwrap();
    let prefix = format!("platform-pending:{id}/");
    assert!(uri.starts_with(&prefix), "{uri}");
    let file_id = &uri[prefix.len()..];

    // One inbox row per file, for the agent's cursor.
    let inbox = common::send(
        &app,
        "GET",
        &format!("/workspaces/{id}/activity?type=a2a_receive"),
        None,
    )
    .await;
    let rows = inbox.json.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", inbox.text);
    assert!(rows.iter().all(|r| r["method"] == "chat_upload_receive"));
    assert!(
        rows.iter()
            .any(|r| r["summary"] == "chat_upload_receive: my_report.pdf"
                && r["request_body"]["file_id"] == file_id)
    );

    let content = format!("/workspaces/{id}/pending-uploads/{file_id}/content");
    let fetched = common::send(&app, "GET", &content, None).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.text, "%PDF-1.4 hello");
    assert_eq!(fetched.headers["content-type"], "application/pdf");
    assert_eq!(fetched.headers["content-length"], "14");
    assert_eq!(
        fetched.headers["content-disposition"],
        "attachment; filename=\"my_report.pdf\"; filename*=UTF-8''my_report.pdf"
    );
    // Another workspace's path does not reach it.
    let foreign = format!("/workspaces/{other}/pending-uploads/{file_id}/content");
    assert_error(
        &common::send(&app, "GET", &foreign, None).await,
        StatusCode::NOT_FOUND,
        "pending upload not found",
    );
    let foreign_ack = format!("/workspaces/{other}/pending-uploads/{file_id}/ack");
    assert_error(
        &common::send(&app, "POST", &foreign_ack, None).await,
        StatusCode::NOT_FOUND,
        "pending upload not found",
    );

    let ack = format!("/workspaces/{id}/pending-uploads/{file_id}/ack");
    let acked = common::send(&app, "POST", &ack, None).await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    assert_eq!(acked.json, json!({"acked": true}));
    let gone = "pending upload not found, expired, or already acked";
    assert_error(
        &common::send(&app, "POST", &ack, None).await,
        StatusCode::NOT_FOUND,
        gone,
    );
    assert_error(
        &common::send(&app, "GET", &content, None).await,
        StatusCode::NOT_FOUND,
        gone,
    );
    assert_error(
        &common::send(
            &app,
            "GET",
            &format!("/workspaces/{id}/pending-uploads/nope/content"),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid file_id",
    );
    // Acked an hour ago: swept.
    sqlx::query("UPDATE pending_uploads SET acked_at = now() - interval '2 hours' WHERE acked_at IS NOT NULL")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(store::uploads::sweep(&db).await.unwrap(), 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn poll_mode_uploads_refuse_what_the_original_refuses(db: PgPool) {
    let app = common::dev_app(&db);
    let id = workspace(&db, "Poller", None, "poll").await;

    let none = upload(&app, id, multipart(&[("other", "a.txt", "", b"x")])).await;
    assert_error(&none, StatusCode::BAD_REQUEST, "no files field in request");
    let malformed = send_raw_with(
        &app,
        "POST",
        &format!("/workspaces/{id}/chat/uploads"),
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_error(
        &malformed,
        StatusCode::BAD_REQUEST,
        "malformed multipart body",
    );
    let cut = upload(&app, id, b"--matrixboundary42\r\nContent-Disp".to_vec()).await;
    assert_eq!(cut.status, StatusCode::BAD_REQUEST, "{}", cut.text);
    let empty = upload(&app, id, multipart(&[("files", "e.txt", "", b"")])).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "file is empty");

    let many: Vec<(&str, &str, &str, &[u8])> =
        (0..65).map(|_| ("files", "f.txt", "", &b"x"[..])).collect();
    let too_many = upload(&app, id, multipart(&many)).await;
    assert_error(
        &too_many,
        StatusCode::BAD_REQUEST,
        "too many files (limit 64)",
    );

    let big = vec![b'a'; 25 * 1024 * 1024 + 1];
    let over = upload(&app, id, multipart(&[("files", "big.bin", "", &big)])).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", over.text);
    assert_eq!(over.json["error"], "file exceeds per-file cap");
    assert_eq!(over.json["filename"], "big.bin");
    assert_eq!(over.json["max"], 26_214_400);
    // Nothing of a refused request was staged.
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_uploads")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(staged, 0);
    let unknown = upload(&app, Uuid::new_v4(), multipart(&[("files", "a", "", b"x")])).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "workspace not found");
}

/// What the loopback agent received.
#[derive(Debug, Default, Clone)]
struct Seen {
    authorization: String,
    content_type: String,
    body: Vec<u8>,
    query: String,
    tasks: Vec<Value>,
}

/// A loopback agent: the upload ingest, the file read and an A2A endpoint that answers
/// `done: <text>`.
async fn agent() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (a, b, c) = (seen.clone(), seen.clone(), seen.clone());
    let app = Router::new()
        .route(
            "/internal/chat/uploads/ingest",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let mut seen = a.lock().unwrap();
                seen.authorization = header(&headers, "authorization");
                seen.content_type = header(&headers, "content-type");
                seen.body = body.to_vec();
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"files": [{"uri": "workspace:/workspace/x", "name": "x"}]})),
                )
            }),
        )
        .route(
            "/internal/file/read",
            get(move |headers: HeaderMap, uri: axum::http::Uri| async move {
                let mut seen = b.lock().unwrap();
                seen.authorization = header(&headers, "authorization");
                seen.query = uri.query().unwrap_or_default().to_string();
                (
                    [
                        ("content-type", "text/plain"),
                        ("content-disposition", "attachment; filename=\"a.txt\""),
                        ("x-private", "dropped"),
                    ],
                    "file body",
                )
            }),
        )
        .route(
            "/",
            post(move |body: axum::Json<Value>| async move {
                c.lock().unwrap().tasks.push(body.0.clone());
                let text = body.0["params"]["message"]["parts"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                axum::Json(json!({"jsonrpc": "2.0", "id": body.0["id"], "result": {
                    "kind": "message", "role": "agent",
                    "parts": [{"kind": "text", "text": format!("done: {text}")}]}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn push_mode_uploads_stream_to_the_agent_with_its_secret(db: PgPool) {
    let app = common::dev_app(&db);
    let (url, seen) = agent().await;
    let id = workspace(&db, "Pusher", Some(&url), "push").await;
    let body = multipart(&[("files", "a.txt", "text/plain", b"pushed bytes")]);

    // The secret is minted on first use: the agent learns it on its next heartbeat.
    let first = upload(&app, id, body.clone()).await;
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.text
    );
    assert_eq!(
        first.json,
        json!({"error": "workspace re-registering — please retry in 30 seconds",
               "detail": "Inbound secret was just minted. Workspace will pick it up on its next heartbeat.",
               "retry_after_seconds": 30})
    );
    let crypto = store::crypto::Crypto::disabled();
    let secret = store::messaging::inbound_secret(&db, &crypto, id)
        .await
        .unwrap()
        .unwrap();

    let reply = upload(&app, id, body.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["files"][0]["uri"], "workspace:/workspace/x");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.authorization, format!("Bearer {secret}"));
    assert_eq!(
        got.content_type,
        format!("multipart/form-data; boundary={BOUNDARY}")
    );
    assert_eq!(got.body, body, "the body reaches the agent unchanged");

    let download = common::send(
        &app,
        "GET",
        &format!("/workspaces/{id}/chat/download?path=/workspace/a%20b.txt"),
        None,
    )
    .await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.text);
    assert_eq!(download.text, "file body");
    assert_eq!(download.headers["content-type"], "text/plain");
    assert_eq!(
        download.headers["content-disposition"],
        "attachment; filename=\"a.txt\""
    );
    assert!(download.headers.get("x-private").is_none());
    assert_eq!(seen.lock().unwrap().query, "path=%2Fworkspace%2Fa+b.txt");

    let refused = [
        ("", "path query required"),
        ("?path=workspace/a", "path must be absolute"),
        (
            "?path=/etc/passwd",
            "path must be under /configs, /workspace, /home, or /plugins",
        ),
        ("?path=/workspace/../etc/passwd", "invalid path"),
    ];
    for (query, message) in refused {
        let reply = common::send(
            &app,
            "GET",
            &format!("/workspaces/{id}/chat/download{query}"),
            None,
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, message);
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn push_mode_without_an_agent_answers_as_the_original(db: PgPool) {
    let app = common::dev_app(&db);
    let id = workspace(&db, "Nowhere", None, "push").await;
    let body = multipart(&[("files", "a.txt", "", b"x")]);
    let reply = upload(&app, id, body.clone()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json,
        json!({"error": "workspace url not registered yet"})
    );
    let download = common::send(
        &app,
        "GET",
        &format!("/workspaces/{id}/chat/download?path=/workspace/a"),
        None,
    )
    .await;
    assert_eq!(download.status, StatusCode::SERVICE_UNAVAILABLE);
    // A poll-mode agent has no URL to download from.
    let poller = workspace(&db, "Poller", None, "poll").await;
    let download = common::send(
        &app,
        "GET",
        &format!("/workspaces/{poller}/chat/download?path=/workspace/a"),
        None,
    )
    .await;
    assert_eq!(download.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        download.json["error"],
        "workspace has no callback URL — chat download requires push-mode + public URL"
    );
    assert!(
        download.json["detail"]
            .as_str()
            .unwrap()
            .ends_with("to enable chat file download.")
    );
    // Dead agent: 502.
    let dead = workspace(&db, "Dead", Some("http://127.0.0.1:9"), "push").await;
    let crypto = store::crypto::Crypto::disabled();
    store::messaging::inbound_secret(&db, &crypto, dead)
        .await
        .unwrap();
    let reply = upload(&app, dead, body).await;
    assert_error(&reply, StatusCode::BAD_GATEWAY, "workspace unreachable");
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen in time");
}

async fn events_of(db: &PgPool, id: Uuid) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT event_type, payload FROM structure_events WHERE workspace_id = $1
         ORDER BY created_at",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_delegation_goes_through_the_proxy_and_completes(db: PgPool) {
    let app = common::dev_app(&db);
    let (url, seen) = agent().await;
    let source = workspace(&db, "Lead", None, "push").await;
    let target = workspace(&db, "Worker", Some(&url), "push").await;
    let delegate = format!("/workspaces/{source}/delegate");

    let body = json!({"target_id": target, "task": "write the report", "idempotency_key": "k1"});
    let reply = common::send(&app, "POST", &delegate, Some(&body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json["status"], "delegated");
    assert_eq!(reply.json["target_id"], target.to_string());
    let id = reply.json["delegation_id"].as_str().unwrap().to_string();

    let list = format!("/workspaces/{source}/delegations");
    eventually("the delegation completes", || async {
        let rows = common::send(&app, "GET", &list, None).await.json;
        rows.as_array().unwrap().iter().any(|r| {
            r["type"] == "delegation" && r["status"] == "completed" && r["delegation_id"] == id
        }) && rows.as_array().unwrap().len() == 2
    })
    .await;
    let rows = common::send(&app, "GET", &list, None).await.json;
    let result = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["summary"]
                .as_str()
                .unwrap()
                .starts_with("Delegation completed")
        })
        .unwrap()
        .clone();
    assert_eq!(result["response_preview"], "done: write the report");
    assert_eq!(result["source_id"], source.to_string());
    assert_eq!(result["target_id"], target.to_string());
    // The agent got the task as an A2A message carrying the delegation id.
    let task = seen.lock().unwrap().tasks[0].clone();
    assert_eq!(task["method"], "message/send");
    assert_eq!(task["params"]["message"]["metadata"]["delegation_id"], id);
    assert_eq!(
        task["params"]["message"]["parts"][0]["text"],
        "write the report"
    );

    eventually("the completion is announced", || async {
        events_of(&db, source).await.len() == 3
    })
    .await;
    // The handler's `DELEGATION_SENT` and the background call's `DELEGATION_STATUS` race: the
    // three are compared as a set.
    let mut names: Vec<String> = events_of(&db, source)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "DELEGATION_COMPLETE",
            "DELEGATION_SENT",
            "DELEGATION_STATUS"
        ],
        "{names:?}"
    );
    let ledger = common::send(&app, "GET", "/admin/delegations?status=completed", None).await;
    assert_eq!(ledger.json["count"], 1, "{}", ledger.text);
    assert_eq!(ledger.json["delegations"][0]["delegation_id"], id);
    assert_eq!(
        ledger.json["delegations"][0]["result_preview"],
        "done: write the report"
    );

    // The same key again: the first delegation, not a second one.
    let again = common::send(&app, "POST", &delegate, Some(&body)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["idempotent_hit"], true);
    assert_eq!(again.json["delegation_id"], id);
    assert_eq!(again.json["status"], "completed");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_delegation_to_nowhere_fails_and_says_why(db: PgPool) {
    let app = common::dev_app(&db);
    let source = workspace(&db, "Lead", None, "push").await;
    let missing = Uuid::new_v4();
    let body = json!({"target_id": missing, "task": "t"});
    let reply = common::send(
        &app,
        "POST",
        &format!("/workspaces/{source}/delegate"),
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let list = format!("/workspaces/{source}/delegations");
    eventually("the delegation fails", || async {
        let rows = common::send(&app, "GET", &list, None).await.json;
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["summary"] == "Delegation failed" && r["error"] == "workspace not found")
    })
    .await;
    eventually("the failure is announced", || async {
        events_of(&db, source)
            .await
            .iter()
            .any(|e| e.0 == "DELEGATION_FAILED")
    })
    .await;
    let events = events_of(&db, source).await;
    let failed = events.iter().find(|e| e.0 == "DELEGATION_FAILED").unwrap();
    assert_eq!(failed.1["error"], "workspace not found");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn delegation_requests_are_checked(db: PgPool) {
    let app = common::dev_app(&db);
    let source = workspace(&db, "Lead", None, "push").await;
    let delegate = format!("/workspaces/{source}/delegate");
    let cases = [
        (json!({"task": "x"}), "invalid delegation request"),
        (
            json!({"target_id": "nope", "task": "x"}),
            "target_id must be a valid UUID",
        ),
        (
            json!({"target_id": source, "task": "x"}),
            "self-delegation not permitted",
        ),
        (json!([1]), "invalid delegation request"),
    ];
    for (body, message) in cases {
        let reply = common::send(&app, "POST", &delegate, Some(&body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, message);
    }
    let record = format!("/workspaces/{source}/delegations/record");
    let reply = common::send(&app, "POST", &record, Some(&json!({"task": "x"}))).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid request body");
    let body = json!({"target_id": "x", "task": "t", "delegation_id": "d"});
    let reply = common::send(&app, "POST", &record, Some(&body)).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "target_id must be a valid UUID",
    );
    let update = format!("/workspaces/{source}/delegations/d1/update");
    let reply = common::send(&app, "POST", &update, Some(&json!({"status": "done"}))).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "status must be 'completed' or 'failed'",
    );
    let reply = common::send(&app, "POST", &update, Some(&json!({}))).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid request body");

    let reply = common::send(&app, "GET", "/admin/delegations?status=weird", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json,
        json!({"error": "unknown status filter",
               "allowed": ["in_flight", "stuck", "failed", "completed"],
               "requested_status": "weird"})
    );
    for limit in ["0", "1001", "x"] {
        let reply = common::send(
            &app,
            "GET",
            &format!("/admin/delegations?limit={limit}"),
            None,
        )
        .await;
        assert_eq!(
            reply.json,
            json!({"error": "limit must be 1..1000", "requested": limit})
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_recorded_delegation_is_updated_and_a_stale_one_swept(db: PgPool) {
    let app = common::dev_app(&db);
    let source = workspace(&db, "Lead", None, "push").await;
    let target = workspace(&db, "Worker", None, "push").await;
    let record = format!("/workspaces/{source}/delegations/record");
    for id in ["d-done", "d-stale"] {
        let body = json!({"target_id": target, "task": "self-sent", "delegation_id": id});
        let reply = common::send(&app, "POST", &record, Some(&body)).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        assert_eq!(
            reply.json,
            json!({"delegation_id": id, "status": "recorded"})
        );
    }
    let in_flight = common::send(&app, "GET", "/admin/delegations", None).await;
    assert_eq!(in_flight.json["count"], 2, "{}", in_flight.text);
    assert_eq!(in_flight.json["status"], "in_flight");
    assert_eq!(in_flight.json["limit"], 100);
    assert_eq!(in_flight.json["delegations"][0]["status"], "dispatched");

    let update = format!("/workspaces/{source}/delegations/d-done/update");
    let body = json!({"status": "completed", "response_preview": "all done"});
    let reply = common::send(&app, "POST", &update, Some(&body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"status": "completed", "delegation_id": "d-done"})
    );
    let rows = common::send(
        &app,
        "GET",
        &format!("/workspaces/{source}/delegations"),
        None,
    )
    .await
    .json;
    let done = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["summary"] == "Delegation completed (all done)")
        .unwrap();
    assert_eq!(done["response_preview"], "all done");
    assert_eq!(done["target_id"], "");

    // Past its deadline: the sweeper fails it.
    sqlx::query("UPDATE delegations SET deadline = now() - interval '1 minute' WHERE delegation_id = 'd-stale'")
        .execute(&db)
        .await
        .unwrap();
    let swept = api::background::delegation_sweeper::sweep(&db, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!((swept.failed, swept.stuck), (1, 0));
    let failed = common::send(&app, "GET", "/admin/delegations?status=failed", None).await;
    assert_eq!(failed.json["delegations"][0]["delegation_id"], "d-stale");
    assert_eq!(
        failed.json["delegations"][0]["error_detail"],
        "deadline exceeded by sweeper"
    );
    let stats = common::send(&app, "GET", "/admin/delegations/stats", None).await;
    assert_eq!(
        stats.json,
        json!({"queued": 0, "dispatched": 0, "in_progress": 0, "completed": 1, "failed": 1, "stuck": 0})
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_session_search_finds_activity_and_memories(db: PgPool) {
    let app = common::dev_app(&db);
    let id = workspace(&db, "Searcher", None, "push").await;
    sqlx::query(
        "INSERT INTO activity_logs (workspace_id, activity_type, method, summary, request_body, created_at)
         VALUES ($1, 'a2a_receive', 'message/send', 'Quarterly figures', '{\"k\":\"needle\"}', now() - interval '1 minute')",
    )
    .bind(id)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO agent_memories (workspace_id, content, scope) VALUES ($1, 'remember the NEEDLE', 'LOCAL')")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let search = |q: &str| format!("/workspaces/{id}/session-search?{q}");
    let all = common::send(&app, "GET", &search(""), None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let items = all.json.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["kind"], "memory");
    assert_eq!(items[0]["label"], "LOCAL");
    assert_eq!(items[0]["method"], "");
    assert!(items[0].get("request_body").is_none());
    assert_eq!(items[1]["kind"], "activity");
    assert_eq!(items[1]["request_body"], json!({"k": "needle"}));

    let found = common::send(&app, "GET", &search("q=%20needle%20"), None).await;
    assert_eq!(found.json.as_array().unwrap().len(), 2);
    let found = common::send(&app, "GET", &search("q=quarterly"), None).await;
    assert_eq!(found.json.as_array().unwrap().len(), 1);
    let limited = common::send(&app, "GET", &search("limit=1"), None).await;
    assert_eq!(limited.json.as_array().unwrap().len(), 1);
    let none = common::send(&app, "GET", &search("q=absent"), None).await;
    assert_eq!(none.json, json!([]));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_inbound_secret_is_encrypted_at_rest_and_plaintext_still_reads(db: PgPool) {
    let id = workspace(&db, "Secretive", None, "push").await;
    let crypto = store::crypto::Crypto::from_key(&[7u8; 32]);
    let (secret, minted) = store::messaging::inbound_secret_healed(&db, &crypto, id)
        .await
        .unwrap()
        .unwrap();
    assert!(minted);
    let stored: String =
        sqlx::query_scalar("SELECT platform_inbound_secret FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(stored.starts_with("enc:1:"), "{stored}");
    assert!(!stored.contains(&secret));
    let again = store::messaging::inbound_secret_healed(&db, &crypto, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, (secret, false));

    // A Go database keeps the secret in plaintext: it still reads.
    sqlx::query("UPDATE workspaces SET platform_inbound_secret = 'plain-go-secret' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let adopted = store::messaging::inbound_secret(&db, &crypto, id)
        .await
        .unwrap();
    assert_eq!(adopted.as_deref(), Some("plain-go-secret"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn hostile_names_queries_and_ids_stay_harmless(db: PgPool) {
    let app = common::dev_app(&db);
    let id = workspace(&db, "Target", None, "poll").await;
    let other = workspace(&db, "Other", None, "poll").await;
    sqlx::query("INSERT INTO agent_memories (workspace_id, content, scope) VALUES ($1, 'other secret', 'LOCAL')")
        .bind(other)
        .execute(&db)
        .await
        .unwrap();
    let names = [
        ("..%2f..%2fetc%2fpasswd", ".._2f.._2fetc_2fpasswd"),
        ("a'b;.txt", "a_b_.txt"),
        ("résumé.pdf", "r_sum_.pdf"),
        ("/etc/shadow", "shadow"),
        ("...", "..."),
    ];
    for (name, expected) in names {
        let reply = upload(&app, id, multipart(&[("files", name, "text html", b"x")])).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text);
        let file = &reply.json["files"][0];
        assert_eq!(file["name"], expected, "{name}");
        assert_ne!(file["mimeType"], "text html");
        let uri = file["uri"].as_str().unwrap();
        let file_id = uri.rsplit('/').next().unwrap();
        let fetched = common::send(
            &app,
            "GET",
            &format!("/workspaces/{id}/pending-uploads/{file_id}/content"),
            None,
        )
        .await;
        let disposition = fetched.headers["content-disposition"].to_str().unwrap();
        assert!(
            !disposition.contains('\n') && !disposition.contains('/'),
            "{disposition}"
        );
    }
    // Wildcards and quotes in a search are text, and never reach another workspace's rows.
    for q in ["%25", "_", "%27%20OR%201%3D1%20--", "secret"] {
        let reply = common::send(
            &app,
            "GET",
            &format!("/workspaces/{id}/session-search?q={q}"),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{q}: {}", reply.text);
        assert!(!reply.text.contains("other secret"), "{q}");
    }
    // Ids that are not UUIDs, and a delegation id full of path tricks.
    let bad = common::send(
        &app,
        "POST",
        &format!("/workspaces/{id}/pending-uploads/..%2F..%2Fx/ack"),
        None,
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid file_id");
    let update =
        format!("/workspaces/{id}/delegations/%27%3B%20DROP%20TABLE%20delegations%3B--/update");
    let reply = common::send(&app, "POST", &update, Some(&json!({"status": "failed"}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let stats = common::send(&app, "GET", "/admin/delegations/stats", None).await;
    assert_eq!(stats.status, StatusCode::OK);
}

/// The push-mode forward is a stream: the agent has the first part of the body before the rest
/// of it was even sent (a server that buffered the request would wait for its end).
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn push_mode_uploads_reach_the_agent_before_the_body_ends(db: PgPool) {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let agent = Router::new().route(
        "/internal/chat/uploads/ingest",
        post(move |body: axum::body::Body| async move {
            let mut stream = body.into_data_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            axum::Json(json!({"files": []}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, agent).await.unwrap() });
    let id = workspace(&db, "Streamer", Some(&url), "push").await;
    let crypto = store::crypto::Crypto::disabled();
    store::messaging::inbound_secret(&db, &crypto, id)
        .await
        .unwrap();

    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let request = axum::http::Request::post(format!("/workspaces/{id}/chat/uploads"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(axum::body::Body::from_stream(chunks))
        .unwrap();
    let app = common::dev_app(&db);
    let answer = tokio::spawn(async move { app.oneshot(request).await.unwrap() });

    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.bin\"\r\n\r\n"
    );
    let first = [head.into_bytes(), vec![b'a'; 1024 * 1024]].concat();
    let first_len = first.len();
    sender.send(Ok(Bytes::from(first))).await.unwrap();
    eventually(
        "the agent has the first MiB while the body is still open",
        || async { received.load(Ordering::SeqCst) >= first_len },
    )
    .await;
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    sender.send(Ok(Bytes::from(tail))).await.unwrap();
    drop(sender);
    let response = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// The inbox rows `DELEGATION_RESULT_INBOX_PUSH=1` writes, as (summary, status, error, text).
async fn inbox_results(db: &PgPool, source: Uuid) -> Vec<(String, String, Option<String>, Value)> {
    sqlx::query_as(
        "SELECT summary, status, error_detail, response_body FROM activity_logs
         WHERE workspace_id = $1 AND activity_type = 'a2a_receive' AND method = 'delegate_result'
           AND source_id = $1 AND target_id IS NULL
         ORDER BY created_at, id",
    )
    .bind(source)
    .fetch_all(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn delegation_results_reach_the_inbox_only_when_asked(db: PgPool) {
    for push in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = api::ApiConfig {
            delegation_result_inbox_push: push,
            ..common::test_config(dir.path())
        };
        let app = common::app(common::test_state(db.clone(), config));
        let source = workspace(&db, &format!("Lead {push}"), None, "poll").await;
        let target = workspace(&db, &format!("Worker {push}"), None, "push").await;
        for (id, update) in [
            (
                "d-ok",
                json!({"status": "completed", "response_preview": "all done"}),
            ),
            (
                "d-bad",
                json!({"status": "failed", "error": "target unreachable"}),
            ),
            ("d-quiet", json!({"status": "failed"})),
        ] {
            let body = json!({"target_id": target, "task": "t", "delegation_id": id});
            let record = format!("/workspaces/{source}/delegations/record");
            let reply = common::send(&app, "POST", &record, Some(&body)).await;
            assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
            let path = format!("/workspaces/{source}/delegations/{id}/update");
            let reply = common::send(&app, "POST", &path, Some(&update)).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
        let rows = inbox_results(&db, source).await;
        if !push {
            assert!(rows.is_empty(), "off by default: {rows:?}");
            continue;
        }
        let expected = vec![
            (
                "Delegation result delivered".to_string(),
                "ok".to_string(),
                None,
                json!({"delegation_id": "d-ok", "text": "all done"}),
            ),
            (
                "Delegation failed".to_string(),
                "error".to_string(),
                Some("target unreachable".to_string()),
                json!({"delegation_id": "d-bad", "text": ""}),
            ),
            (
                "Delegation failed".to_string(),
                "error".to_string(),
                None,
                json!({"delegation_id": "d-quiet", "text": ""}),
            ),
        ];
        assert_eq!(rows, expected);
        // The poll-mode agent finds them in its inbox, through the activity cursor.
        let inbox = common::send(
            &app,
            "GET",
            &format!("/workspaces/{source}/activity?type=a2a_receive"),
            None,
        )
        .await;
        assert_eq!(
            inbox.json.as_array().map(Vec::len),
            Some(3),
            "{}",
            inbox.text
        );
    }
}
