//! The canvas viewport (with its CanvasOrBearer guard) and approvals, against a real PostgreSQL:
//! wire bytes, stored rows, recorded events, and the original's 400s.

use std::time::Duration;

use crate::common::{Reply, app, assert_error, send, send_raw, send_with, test_config, test_state};
use api::events_hub::{EventsHub, LIVENESS_NAME};
use api::{ApiConfig, AppState};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN: &str = "panels-admin-token";
/// Bounds every wait for an event so a missing one fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

fn dev_app(db: &PgPool) -> Router {
    app(test_state(db.clone(), test_config(&std::env::temp_dir())))
}

fn strict_config() -> ApiConfig {
    let mut config = test_config(&std::env::temp_dir());
    config.molecule_env = String::new();
    config.admin_token = Some(ADMIN.into());
    // The CORS layer runs first, so the canvas's default origins must be allowed there too.
    config.cors_origins = [
        "http://localhost:3000",
        "http://localhost:3001",
        "https://canvas.example",
    ]
    .map(String::from)
    .to_vec();
    config
}

async fn workspace(db: &PgPool, name: &str, parent: Option<Uuid>) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name, parent_id) VALUES ($1, $2) RETURNING id")
        .bind(name)
        .bind(parent)
        .fetch_one(db)
        .await
        .unwrap()
}

// ---- viewport ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_viewport_starts_at_the_default_and_keeps_what_was_saved(db: PgPool) {
    let app = dev_app(&db);
    let reply = send(&app, "GET", "/canvas/viewport", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text, r#"{"x":0,"y":0,"zoom":1}"#);
    assert_eq!(
        reply.headers["content-type"],
        "application/json; charset=utf-8"
    );

    let saved = json!({"x": -40, "y": 12.5, "zoom": 0.8});
    let reply = send(&app, "PUT", "/canvas/viewport", Some(&saved)).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::OK, r#"{"status":"saved"}"#)
    );
    let reply = send(&app, "GET", "/canvas/viewport", None).await;
    assert_eq!(reply.text, r#"{"x":-40,"y":12.5,"zoom":0.8}"#);

    // One row for the tenant, at the original's fixed id; missing fields are 0, `null` all zeros.
    send(
        &app,
        "PUT",
        "/canvas/viewport",
        Some(&json!({"x": null, "zoom": 2})),
    )
    .await;
    let rows: Vec<(Uuid, f64, f64, f64)> =
        sqlx::query_as("SELECT id, x, y, zoom FROM canvas_viewport")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(rows, [(Uuid::from_u128(1), 0.0, 0.0, 2.0)]);
    let reply = send_raw(&app, "PUT", "/canvas/viewport", b"null".to_vec()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&app, "GET", "/canvas/viewport", None).await;
    assert_eq!(reply.text, r#"{"x":0,"y":0,"zoom":0}"#);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_viewport_that_is_not_numbers_is_refused_and_nothing_is_saved(db: PgPool) {
    let app = dev_app(&db);
    for body in [
        &b""[..],
        b"not json",
        br#"{"x":"left"}"#,
        br#"{"zoom":true}"#,
        b"[1,2]",
    ] {
        let reply = send_raw(&app, "PUT", "/canvas/viewport", body.to_vec()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid viewport data");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas_viewport")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

async fn put_viewport(app: &Router, headers: &[(&str, &str)]) -> Reply {
    let body = json!({"x": 1, "y": 2, "zoom": 1});
    send_with(app, "PUT", "/canvas/viewport", headers, Some(&body)).await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn canvas_or_bearer_lets_the_canvas_origins_and_valid_bearers_save(db: PgPool) {
    let app = app(test_state(db.clone(), strict_config()));
    // Before the first workspace token everyone may save (a fresh install).
    assert_eq!(put_viewport(&app, &[]).await.status, StatusCode::OK);

    let own = workspace(&db, "own", None).await;
    let token = store::tokens::mint_workspace_token(&db, own).await.unwrap();
    let org = store::tokens::mint_org_token(&db, "ci", None)
        .await
        .unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    let (token, org, admin) = (bearer(&token), bearer(&org), bearer(ADMIN));

    let refused = put_viewport(&app, &[]).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "admin auth required");
    for origin in [
        "http://localhost:3000",
        "http://localhost:3001",
        "https://canvas.example",
    ] {
        let reply = put_viewport(&app, &[("origin", origin)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{origin}: {}", reply.text);
    }
    for passing in [&token, &admin] {
        let reply = put_viewport(&app, &[("authorization", passing)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    // Org tokens are not accepted here, and a bad bearer never falls back to the origin.
    let reply = put_viewport(&app, &[("authorization", &org)]).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid admin auth token");
    let garbage = [
        ("authorization", "Bearer nope"),
        ("origin", "http://localhost:3000"),
    ];
    let reply = put_viewport(&app, &garbage).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid admin auth token");
    // Reading needs nothing.
    assert_eq!(
        send(&app, "GET", "/canvas/viewport", None).await.status,
        StatusCode::OK
    );
}

// ---- approvals ----

async fn create_approval(app: &Router, id: Uuid, body: Value) -> Reply {
    send(
        app,
        "POST",
        &format!("/workspaces/{id}/approvals"),
        Some(&body),
    )
    .await
}

async fn events_of(db: &PgPool, workspace_id: Uuid) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT event_type, payload FROM structure_events WHERE workspace_id = $1
         ORDER BY created_at, event_type",
    )
    .bind(workspace_id)
    .fetch_all(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_request_is_stored_as_the_original_stores_it_and_escalates_to_the_parent(db: PgPool) {
    let app = dev_app(&db);
    let parent = workspace(&db, "lead", None).await;
    let child = workspace(&db, "worker", Some(parent)).await;

    let reply = create_approval(&app, child, json!({"action": "deploy"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let approval_id: Uuid = reply.json["approval_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        reply.text,
        format!(r#"{{"approval_id":"{approval_id}","status":"pending"}}"#)
    );
    // Omitted strings are stored as '' and an omitted context as JSON null (the original's quirk).
    let stored: (String, String, Value, String) = sqlx::query_as(
        "SELECT task_id, reason, context, status FROM approval_requests WHERE id = $1",
    )
    .bind(approval_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        stored,
        (
            String::new(),
            String::new(),
            Value::Null,
            "pending".to_string()
        )
    );

    let requested = json!({"action": "deploy", "approval_id": approval_id, "reason": "",
                           "task_id": ""});
    assert_eq!(
        events_of(&db, child).await,
        [("APPROVAL_REQUESTED".to_string(), requested)]
    );
    let escalated = json!({"action": "deploy", "approval_id": approval_id,
                           "from_workspace_id": child, "reason": ""});
    assert_eq!(
        events_of(&db, parent).await,
        [("APPROVAL_ESCALATED".to_string(), escalated)]
    );
    // The row itself stays pending: escalation is only an event.
    let body = json!({"action": "rm -rf", "task_id": "t-1", "reason": null,
                      "context": {"path": "/tmp"}});
    let reply = create_approval(&app, parent, body).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let context: Value =
        sqlx::query_scalar("SELECT context FROM approval_requests WHERE workspace_id = $1")
            .bind(parent)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(context, json!({"path": "/tmp"}));
    assert_eq!(
        events_of(&db, parent).await.len(),
        2,
        "a root escalates nowhere"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_approval_requests_get_the_originals_400s_and_write_nothing(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w", None).await;
    let uri = format!("/workspaces/{id}/approvals");
    for body in [
        &b""[..],
        b"{}",
        br#"{"action":""}"#,
        br#"{"action":5}"#,
        br#"{"action":"x","context":[1]}"#,
        br#"{"action":"x","task_id":7}"#,
        br#"["deploy"]"#,
        b"null",
    ] {
        let reply = send_raw(&app, "POST", &uri, body.to_vec()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid request body");
    }
    // The original answered 500 `failed to create approval` (a foreign-key failure); an unknown
    // workspace is the client's mistake.
    let reply = create_approval(&app, Uuid::nil(), json!({"action": "x"})).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "workspace not found");
    let reply = send(
        &app,
        "POST",
        "/workspaces/not-a-uuid/approvals",
        Some(&json!({})),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid workspace ID");
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM approval_requests) + (SELECT count(*) FROM structure_events)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(written, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn deciding_answers_once_and_records_the_decision(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w", None).await;
    let other = workspace(&db, "other", None).await;
    let reply = create_approval(&app, id, json!({"action": "deploy", "task_id": "t"})).await;
    let approval = reply.json["approval_id"].as_str().unwrap().to_string();
    let decide = format!("/workspaces/{id}/approvals/{approval}/decide");

    for (body, message) in [
        (json!({}), "invalid request body"),
        (json!({"decision": ""}), "invalid request body"),
        (json!(["approved"]), "invalid request body"),
        (
            json!({"decision": "maybe"}),
            "decision must be 'approved' or 'denied'",
        ),
    ] {
        let reply = send(&app, "POST", &decide, Some(&body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, message);
    }
    // Another workspace's path, or an id that cannot exist, finds no pending request.
    let not_found = "approval not found or already decided";
    let elsewhere = format!("/workspaces/{other}/approvals/{approval}/decide");
    let approve = json!({"decision": "approved"});
    let reply = send(&app, "POST", &elsewhere, Some(&approve)).await;
    assert_error(&reply, StatusCode::NOT_FOUND, not_found);
    let malformed = format!("/workspaces/{id}/approvals/not-a-uuid/decide");
    let reply = send(&app, "POST", &malformed, Some(&approve)).await;
    assert_error(&reply, StatusCode::NOT_FOUND, not_found);

    let reply = send(&app, "POST", &decide, Some(&approve)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!(r#"{{"approval_id":"{approval}","status":"approved"}}"#)
    );
    let reply = send(&app, "POST", &decide, Some(&json!({"decision": "denied"}))).await;
    assert_error(&reply, StatusCode::NOT_FOUND, not_found);

    let (status, decided_by): (String, String) = sqlx::query_as(
        "SELECT status, decided_by FROM approval_requests WHERE decided_at IS NOT NULL",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), decided_by.as_str()),
        ("approved", "human")
    );
    let events = events_of(&db, id).await;
    let decided = json!({"approval_id": approval, "decided_by": "human", "decision": "approved"});
    assert_eq!(
        events.last().unwrap(),
        &("APPROVAL_APPROVED".to_string(), decided)
    );

    // The workspace's history shows it, in the original's (sorted) key order.
    let reply = send(&app, "GET", &format!("/workspaces/{id}/approvals"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let item = &reply.json[0];
    let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "action",
            "created_at",
            "decided_at",
            "decided_by",
            "id",
            "reason",
            "status",
            "task_id"
        ]
    );
    assert_eq!(
        (item["status"].clone(), item["task_id"].clone()),
        (json!("approved"), json!("t"))
    );
    assert!(item["decided_at"].as_str().unwrap().ends_with('Z'));
    let empty = send(&app, "GET", &format!("/workspaces/{other}/approvals"), None).await;
    assert_eq!(empty.text, "[]");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_pending_list_names_workspaces_and_expires_stale_requests(db: PgPool) {
    let app = app(test_state(db.clone(), strict_config()));
    let id = workspace(&db, "Research", None).await;
    let auth = format!("Bearer {ADMIN}");
    let headers = [("authorization", auth.as_str())];
    let uri = format!("/workspaces/{id}/approvals");
    for action in ["stale", "fresh"] {
        let body = json!({ "action": action });
        let reply = send_with(&app, "POST", &uri, &headers, Some(&body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    sqlx::query(
        "UPDATE approval_requests SET created_at = now() - interval '11 minutes'
         WHERE action = 'stale'",
    )
    .execute(&db)
    .await
    .unwrap();

    let reply = send_with(&app, "GET", "/approvals/pending", &headers, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let list = reply.json.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", reply.text);
    assert_eq!(
        (
            &list[0]["action"],
            &list[0]["workspace_name"],
            &list[0]["workspace_id"]
        ),
        (&json!("fresh"), &json!("Research"), &json!(id))
    );
    assert_eq!(list[0]["reason"], json!(""));
    let expired: (String, String) =
        sqlx::query_as("SELECT status, decided_by FROM approval_requests WHERE action = 'stale'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(expired, ("denied".to_string(), "auto-expired".to_string()));
    let anonymous = send(&app, "GET", "/approvals/pending", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn approval_events_reach_the_live_stream(db: PgPool) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut services = crate::common::test_services(db.clone(), test_config(&std::env::temp_dir()));
    services.events = EventsHub::new(shutdown.clone());
    let state = AppState::new(services);
    state
        .events
        .spawn_listener(db.clone(), state.liveness.clone());
    let listening = async {
        while !state.liveness.snapshot().contains_key(LIVENESS_NAME) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, listening)
        .await
        .expect("the hub listens");
    let mut events = state.events.subscribe();
    let app = app(state);
    let id = workspace(&db, "w", None).await;

    let reply = create_approval(&app, id, json!({"action": "deploy"})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let event = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("hub open");
            if event.event == "APPROVAL_REQUESTED" {
                return event;
            }
        }
    })
    .await
    .expect("APPROVAL_REQUESTED is broadcast");
    assert_eq!(event.workspace_id, id.to_string());
    assert_eq!(event.payload["approval_id"], reply.json["approval_id"]);
    shutdown.cancel();
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn purging_a_workspace_deletes_its_approval_requests(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "doomed", None).await;
    let reply = create_approval(&app, id, json!({"action": "deploy"})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    // The foreign key does not cascade (as in the original), so the purge removes them first.
    let reply = send(
        &app,
        "DELETE",
        &format!("/workspaces/{id}?confirm=true&purge=true"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM approval_requests")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
