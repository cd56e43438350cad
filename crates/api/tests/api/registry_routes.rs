//! The agents' routes against a real database: registration and its token bootstrap, heartbeats
//! and status transitions, agent cards, the hierarchy's access rules, discovery, peers, events,
//! activity and the liveness sweep.

use crate::common;

use std::time::Duration;

use api::ApiConfig;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

struct Reply {
    status: StatusCode,
    text: String,
    json: Value,
}

/// One request with optional JSON body, bearer and `X-Workspace-ID`.
async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    bearer: Option<&str>,
    caller: Option<Uuid>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(caller) = caller {
        request = request.header("x-workspace-id", caller.to_string());
    }
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// Not dev mode, so the guards are on (no ADMIN_TOKEN: AdminAuth accepts workspace tokens).
fn strict_config() -> ApiConfig {
    let dir = std::env::temp_dir();
    ApiConfig {
        molecule_env: "test".into(),
        ..common::test_config(&dir)
    }
}

fn app(db: &PgPool) -> Router {
    common::app(common::test_state(db.clone(), strict_config()))
}

async fn workspace(db: &PgPool, name: &str, parent: Option<Uuid>) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name, parent_id) VALUES ($1, $2) RETURNING id")
        .bind(name)
        .bind(parent)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn status_of(db: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM workspaces WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn events_of(db: &PgPool, id: Uuid) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT event_type, payload FROM structure_events WHERE workspace_id = $1 ORDER BY created_at")
        .bind(id)
        .fetch_all(db)
        .await
        .unwrap()
}

fn card(name: &str) -> Value {
    json!({ "name": name, "skills": [{ "id": "echo", "name": "Echo" }] })
}

/// Registers `id` without credentials and returns the minted token.
async fn register(app: &Router, id: Uuid, url: &str) -> String {
    let reply = call(
        app,
        "POST",
        "/registry/register",
        Some(json!({ "id": id, "url": url, "agent_card": card("A") })),
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json["auth_token"]
        .as_str()
        .expect("first registration mints a token")
        .to_string()
}

async fn heartbeat(app: &Router, token: &str, body: Value) -> Reply {
    call(
        app,
        "POST",
        "/registry/heartbeat",
        Some(body),
        Some(token),
        None,
    )
    .await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn first_registration_mints_a_token_and_later_ones_need_it(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Echo", None).await;

    let token = register(&app, id, "http://localhost:8001").await;
    assert_eq!(token.len(), 43);
    assert_eq!(status_of(&db, id).await, "online");
    let (url, agent_card): (String, Value) =
        sqlx::query_as("SELECT url, agent_card FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(url, "http://localhost:8001");
    assert_eq!(agent_card, card("A"));
    let events = events_of(&db, id).await;
    assert_eq!(events[0].0, "WORKSPACE_ONLINE");
    assert_eq!(
        events[0].1,
        json!({ "agent_card": card("A"), "delivery_mode": "push", "url": "http://localhost:8001" })
    );

    let again = json!({ "id": id, "url": "http://localhost:8001", "agent_card": card("A") });
    let reply = call(
        &app,
        "POST",
        "/registry/register",
        Some(again.clone()),
        None,
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("missing workspace auth token")
        )
    );
    let reply = call(
        &app,
        "POST",
        "/registry/register",
        Some(again.clone()),
        Some("forged"),
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("invalid workspace auth token")
        )
    );
    let reply = call(
        &app,
        "POST",
        "/registry/register",
        Some(again),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json.get("auth_token").is_none(), "no second token");
    assert_eq!(reply.json["status"], "registered");
    assert_eq!(reply.json["delivery_mode"], "push");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn registration_refuses_bad_input(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Echo", None).await;
    let cases = [
        (
            json!({ "url": "http://localhost:1", "agent_card": {} }),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            json!({ "id": "nope", "url": "http://localhost:1", "agent_card": {} }),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            json!({ "id": id, "url": "http://localhost:1" }),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            json!({ "id": id, "url": "http://localhost:1", "agent_card": {}, "delivery_mode": "pull" }),
            StatusCode::BAD_REQUEST,
            "delivery_mode must be 'push' or 'poll'",
        ),
        (
            json!({ "id": id, "agent_card": {} }),
            StatusCode::BAD_REQUEST,
            "url is required for push-mode workspaces",
        ),
        (
            json!({ "id": id, "url": "http://169.254.169.254/", "agent_card": {} }),
            StatusCode::BAD_REQUEST,
            "url targets a blocked address: link-local address (cloud metadata endpoint)",
        ),
        (
            json!({ "id": id, "url": "file:///etc/passwd", "agent_card": {} }),
            StatusCode::BAD_REQUEST,
            "url scheme must be http or https, got \"file\"",
        ),
        (
            json!({ "id": Uuid::new_v4(), "url": "http://localhost:1", "agent_card": {} }),
            StatusCode::NOT_FOUND,
            "workspace not found",
        ),
        (
            json!({ "id": id, "url": "http://localhost:1", "agent_card": { "blob": "x".repeat(300 * 1024) } }),
            StatusCode::PAYLOAD_TOO_LARGE,
            "agent_card exceeds 262144 bytes",
        ),
    ];
    for (body, status, message) in cases {
        let reply = call(
            &app,
            "POST",
            "/registry/register",
            Some(body.clone()),
            None,
            None,
        )
        .await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str()),
            (status, Some(message)),
            "{body:.100}"
        );
    }
    assert_eq!(
        status_of(&db, id).await,
        "provisioning",
        "nothing was registered"
    );
    assert!(events_of(&db, id).await.is_empty());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_removed_workspace_cannot_register_again(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Gone", None).await;
    sqlx::query("UPDATE workspaces SET status = 'removed' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let body = json!({ "id": id, "url": "http://localhost:1", "agent_card": {} });
    let reply = call(&app, "POST", "/registry/register", Some(body), None, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&db, id).await, "removed");
    let tokens: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(tokens, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn heartbeats_store_load_and_move_between_online_and_degraded(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Echo", None).await;
    let token = register(&app, id, "http://localhost:8001").await;

    let beat = json!({ "workspace_id": id, "error_rate": 0.0, "sample_error": "", "active_tasks": 2, "uptime_seconds": 120, "current_task": "Analyzing", "monthly_spend": 1500 });
    let reply = heartbeat(&app, &token, beat).await;
    assert_eq!(
        (reply.status, &reply.json["status"]),
        (StatusCode::OK, &json!("ok"))
    );
    let row: (i32, i32, String, i64, f64) = sqlx::query_as(
        "SELECT active_tasks, uptime_seconds, current_task, monthly_spend, last_error_rate FROM workspaces WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(row, (2, 120, "Analyzing".to_string(), 1500, 0.0));

    // A zero spend leaves the stored one; a high error rate degrades.
    let beat = json!({ "workspace_id": id, "error_rate": 0.8, "sample_error": "API rate limit", "active_tasks": 0, "uptime_seconds": 200 });
    assert_eq!(heartbeat(&app, &token, beat).await.status, StatusCode::OK);
    assert_eq!(status_of(&db, id).await, "degraded");
    let spend: i64 = sqlx::query_scalar("SELECT monthly_spend FROM workspaces WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(spend, 1500);
    let events = events_of(&db, id).await;
    let degraded = events
        .iter()
        .find(|(kind, _)| kind == "WORKSPACE_DEGRADED")
        .expect("degraded event");
    assert_eq!(
        degraded.1,
        json!({ "error_rate": 0.8, "sample_error": "API rate limit" })
    );

    // Still degraded at 0.1; back online below it.
    let beat = json!({ "workspace_id": id, "error_rate": 0.1 });
    heartbeat(&app, &token, beat).await;
    assert_eq!(status_of(&db, id).await, "degraded");
    let beat = json!({ "workspace_id": id, "error_rate": 0.0 });
    heartbeat(&app, &token, beat).await;
    assert_eq!(status_of(&db, id).await, "online");
    let kinds: Vec<String> = events_of(&db, id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(
        kinds,
        ["WORKSPACE_ONLINE", "WORKSPACE_DEGRADED", "WORKSPACE_ONLINE"]
    );

    // A wedged runtime degrades even at a zero error rate, and blocks recovery.
    let beat = json!({ "workspace_id": id, "runtime_state": "wedged", "sample_error": "SDK init timeout" });
    heartbeat(&app, &token, beat.clone()).await;
    assert_eq!(status_of(&db, id).await, "degraded");
    heartbeat(&app, &token, beat).await;
    assert_eq!(status_of(&db, id).await, "degraded");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn heartbeats_bring_provisioning_offline_and_awaiting_workspaces_online(db: PgPool) {
    let app = app(&db);
    for from in ["provisioning", "offline", "awaiting_agent"] {
        let id = workspace(&db, from, None).await;
        sqlx::query("UPDATE workspaces SET status = $2::workspace_status WHERE id = $1")
            .bind(id)
            .bind(from)
            .execute(&db)
            .await
            .unwrap();
        // No token yet: a legacy agent heartbeats without one.
        let reply = call(
            &app,
            "POST",
            "/registry/heartbeat",
            Some(json!({ "workspace_id": id })),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{from}: {}", reply.text);
        assert_eq!(status_of(&db, id).await, "online", "{from}");
        assert_eq!(
            events_of(&db, id).await.last().unwrap().0,
            "WORKSPACE_ONLINE",
            "{from}"
        );
    }
    for kept in ["paused", "hibernated", "failed"] {
        let id = workspace(&db, kept, None).await;
        sqlx::query("UPDATE workspaces SET status = $2::workspace_status WHERE id = $1")
            .bind(id)
            .bind(kept)
            .execute(&db)
            .await
            .unwrap();
        call(
            &app,
            "POST",
            "/registry/heartbeat",
            Some(json!({ "workspace_id": id })),
            None,
            None,
        )
        .await;
        assert_eq!(status_of(&db, id).await, kept);
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn heartbeats_need_the_workspaces_own_token(db: PgPool) {
    let app = app(&db);
    let echo = workspace(&db, "Echo", None).await;
    let other = workspace(&db, "Other", None).await;
    let _echo_token = register(&app, echo, "http://localhost:8001").await;
    let other_token = register(&app, other, "http://localhost:8002").await;
    let body = json!({ "workspace_id": echo, "active_tasks": 5 });
    let cases = [
        (None, "missing workspace auth token"),
        (Some(other_token.as_str()), "invalid workspace auth token"),
    ];
    for (bearer, message) in cases {
        let reply = call(
            &app,
            "POST",
            "/registry/heartbeat",
            Some(body.clone()),
            bearer,
            None,
        )
        .await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(message))
        );
    }
    let active: i32 = sqlx::query_scalar("SELECT active_tasks FROM workspaces WHERE id = $1")
        .bind(echo)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(active, 0);
    let reply = call(
        &app,
        "POST",
        "/registry/heartbeat",
        Some(json!({ "error_rate": 1 })),
        None,
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid request body"))
    );
    let reply = call(
        &app,
        "POST",
        "/registry/heartbeat",
        Some(json!({ "workspace_id": Uuid::new_v4() })),
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn update_card_replaces_the_card_and_records_it(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Echo", None).await;
    let token = register(&app, id, "http://localhost:8001").await;
    let body = json!({ "workspace_id": id, "agent_card": card("Echo v2") });
    let reply = call(
        &app,
        "POST",
        "/registry/update-card",
        Some(body.clone()),
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = call(
        &app,
        "POST",
        "/registry/update-card",
        Some(body),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::OK, r#"{"status":"updated"}"#)
    );
    let stored: Value = sqlx::query_scalar("SELECT agent_card FROM workspaces WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, card("Echo v2"));
    let last = events_of(&db, id).await.pop().unwrap();
    assert_eq!(
        last,
        (
            "AGENT_CARD_UPDATED".to_string(),
            json!({ "agent_card": card("Echo v2") })
        )
    );

    let huge = json!({ "workspace_id": id, "agent_card": { "blob": "x".repeat(300 * 1024) } });
    let reply = call(
        &app,
        "POST",
        "/registry/update-card",
        Some(huge),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let reply = call(
        &app,
        "POST",
        "/registry/update-card",
        Some(json!({ "workspace_id": id })),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

/// A tree: A (root) → B, C; B → D; E another root.
struct Tree {
    a: Uuid,
    b: Uuid,
    c: Uuid,
    d: Uuid,
    e: Uuid,
}

async fn tree(db: &PgPool) -> Tree {
    let a = workspace(db, "A", None).await;
    let b = workspace(db, "B", Some(a)).await;
    let c = workspace(db, "C", Some(a)).await;
    let d = workspace(db, "D", Some(b)).await;
    let e = workspace(db, "E", None).await;
    Tree { a, b, c, d, e }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn check_access_follows_the_hierarchy(db: PgPool) {
    let app = app(&db);
    let Tree { a, b, c, d, e } = tree(&db).await;
    let allowed = [
        (a, a),
        (b, c),
        (c, b),
        (a, e),
        (a, b),
        (b, a),
        (a, d),
        (d, a),
        (b, d),
        (d, b),
    ];
    let refused = [
        (d, c),
        (c, d),
        (d, e),
        (e, b),
        (a, Uuid::new_v4()),
        (Uuid::new_v4(), a),
    ];
    for (expected, pairs) in [(true, &allowed[..]), (false, &refused[..])] {
        for (caller, target) in pairs {
            let body = json!({ "caller_id": caller, "target_id": target });
            let reply = call(
                &app,
                "POST",
                "/registry/check-access",
                Some(body),
                None,
                None,
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(
                reply.text,
                format!(r#"{{"allowed":{expected}}}"#),
                "{caller} → {target}"
            );
        }
    }
    let reply = call(
        &app,
        "POST",
        "/registry/check-access",
        Some(json!({ "caller_id": a })),
        None,
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid request body"))
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn discover_needs_a_named_authenticated_caller_the_hierarchy_allows(db: PgPool) {
    let app = app(&db);
    let Tree { a, b, c, d, .. } = tree(&db).await;
    let b_token = register(&app, b, "http://localhost:8002").await;
    let c_token = register(&app, c, "http://localhost:8003").await;
    let d_token = register(&app, d, "http://localhost:8004").await;

    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{c}"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("X-Workspace-ID header is required")
        )
    );
    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{c}"),
        None,
        None,
        Some(b),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("missing workspace auth token")
        )
    );
    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{c}"),
        None,
        Some(&c_token),
        Some(b),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("invalid workspace auth token")
        )
    );

    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{c}"),
        None,
        Some(&b_token),
        Some(b),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!(r#"{{"id":"{c}","name":"C","url":"http://localhost:8003"}}"#)
    );

    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{c}"),
        None,
        Some(&d_token),
        Some(d),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("not authorized to discover this workspace")
        )
    );

    // The parent never registered: it has no URL yet.
    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{a}"),
        None,
        Some(&b_token),
        Some(b),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json,
        json!({ "error": "workspace not available", "status": "provisioning" })
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn discover_rewrites_host_local_urls_of_external_agents_for_containers(db: PgPool) {
    let app = app(&db);
    let a = workspace(&db, "A", None).await;
    let ext = workspace(&db, "Ext", None).await;
    sqlx::query("UPDATE workspaces SET runtime = 'external' WHERE id = $1")
        .bind(ext)
        .execute(&db)
        .await
        .unwrap();
    register(&app, ext, "http://localhost:9000").await;
    let reply = discover_unauthenticated(&app, a, ext).await;
    assert_eq!(reply.json["url"], "http://host.docker.internal:9000");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn peers_are_siblings_children_and_parent(db: PgPool) {
    let app = app(&db);
    let Tree { a, b, c, d, e } = tree(&db).await;
    let b_token = register(&app, b, "http://localhost:8002").await;
    let gone = workspace(&db, "Gone", Some(a)).await;
    sqlx::query("UPDATE workspaces SET status = 'removed' WHERE id = $1")
        .bind(gone)
        .execute(&db)
        .await
        .unwrap();

    let reply = call(
        &app,
        "GET",
        &format!("/registry/{b}/peers"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = call(
        &app,
        "GET",
        &format!("/registry/{b}/peers"),
        None,
        Some(&b_token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let ids: Vec<&str> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [c.to_string(), d.to_string(), a.to_string()]);
    let c_peer = &reply.json[0];
    assert_eq!(
        c_peer.to_string(),
        format!(
            r#"{{"active_tasks":0,"agent_card":null,"id":"{c}","name":"C","parent_id":"{a}","role":null,"status":"provisioning","tier":1,"url":""}}"#
        )
    );

    // Roots are siblings of each other; a workspace without a token is not guarded.
    let reply = call(
        &app,
        "GET",
        &format!("/registry/{e}/peers"),
        None,
        None,
        None,
    )
    .await;
    let names: Vec<&str> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A"]);
    let reply = call(
        &app,
        "GET",
        &format!("/registry/{}/peers", Uuid::new_v4()),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn events_list_newest_first_in_the_original_shape(db: PgPool) {
    let app = app(&db);
    let echo = workspace(&db, "Echo", None).await;
    let token = register(&app, echo, "http://localhost:8001").await;
    heartbeat(
        &app,
        &token,
        json!({ "workspace_id": echo, "error_rate": 1 }),
    )
    .await;
    let other = workspace(&db, "Other", None).await;
    store::events::record(
        &db,
        "WORKSPACE_PROVISIONING",
        Some(other),
        &json!({ "name": "Other" }),
    )
    .await
    .unwrap();

    let reply = call(&app, "GET", "/events", None, None, None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "admin only once tokens exist"
    );
    let reply = call(&app, "GET", "/events", None, Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let kinds: Vec<&str> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_DEGRADED",
            "WORKSPACE_ONLINE"
        ]
    );
    let newest = &reply.json[0];
    let keys: Vec<&String> = newest.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["created_at", "event_type", "id", "payload", "workspace_id"]
    );
    assert!(newest["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        reply
            .text
            .contains(r#""payload":{"error_rate":1,"sample_error":""}"#),
        "{}",
        reply.text
    );

    let reply = call(
        &app,
        "GET",
        &format!("/events/{echo}"),
        None,
        Some(&token),
        None,
    )
    .await;
    let kinds: Vec<&str> = reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["WORKSPACE_DEGRADED", "WORKSPACE_ONLINE"]);
    let reply = call(
        &app,
        "GET",
        &format!("/events/{}", Uuid::new_v4()),
        None,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(reply.text, "[]");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn activity_is_reported_validated_and_filtered(db: PgPool) {
    let app = app(&db);
    let echo = workspace(&db, "Echo", None).await;
    let sum = workspace(&db, "Summarizer", None).await;
    let echo_token = register(&app, echo, "http://localhost:8001").await;
    let sum_token = register(&app, sum, "http://localhost:8002").await;
    let uri = format!("/workspaces/{echo}/activity");

    let reports = [
        json!({ "activity_type": "agent_log", "method": "inference", "summary": "Processing user query" }),
        json!({ "activity_type": "a2a_send", "method": "message/send", "summary": "Sent", "target_id": sum, "duration_ms": 150 }),
        json!({ "activity_type": "error", "summary": "Connection timeout", "status": "error", "error_detail": "dial tcp: timeout after 30s" }),
        json!({ "activity_type": "task_update", "method": "start", "summary": "Started", "metadata": { "step": 1 } }),
    ];
    for report in reports {
        let reply = call(&app, "POST", &uri, Some(report), Some(&echo_token), None).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (StatusCode::OK, r#"{"status":"logged"}"#)
        );
    }
    let reply = call(
        &app,
        "POST",
        &uri,
        Some(json!({ "activity_type": "bad_type", "summary": "x" })),
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json["error"],
        "invalid activity_type, must be one of: a2a_send, a2a_receive, task_update, agent_log, skill_promotion, memory_write, error"
    );
    let spoof = json!({ "activity_type": "agent_log", "source_id": sum });
    let reply = call(&app, "POST", &uri, Some(spoof), Some(&echo_token), None).await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("source_id must match authenticated workspace")
        )
    );
    let reply = call(
        &app,
        "POST",
        &uri,
        Some(json!({ "activity_type": "agent_log" })),
        Some(&sum_token),
        None,
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "another workspace's token"
    );

    let reply = call(&app, "GET", &uri, None, Some(&echo_token), None).await;
    assert_eq!(reply.json.as_array().unwrap().len(), 4);
    let newest = &reply.json[0];
    assert_eq!(newest["activity_type"], "task_update");
    assert_eq!(newest["request_body"], json!({ "step": 1 }));
    assert_eq!(newest["source_id"], echo.to_string());
    assert_eq!(newest["status"], "ok");

    let reply = call(
        &app,
        "GET",
        &format!("{uri}?type=error"),
        None,
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.json.as_array().unwrap().len(), 1);
    assert!(reply.text.contains("dial tcp"));
    assert!(
        !reply.text.contains("request_body"),
        "absent bodies are left out: {}",
        reply.text
    );
    let reply = call(
        &app,
        "GET",
        &format!("{uri}?type=a2a_send"),
        None,
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.json[0]["target_id"], sum.to_string());
    assert!(reply.text.contains(r#""duration_ms":150"#));
    let reply = call(
        &app,
        "GET",
        &format!("{uri}?limit=2"),
        None,
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.json.as_array().unwrap().len(), 2);
    let reply = call(
        &app,
        "GET",
        &format!("{uri}?source=agent"),
        None,
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.json.as_array().unwrap().len(), 4);
    let reply = call(
        &app,
        "GET",
        &format!("{uri}?source=canvas"),
        None,
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.text, "[]");
    let reply = call(
        &app,
        "GET",
        &format!("{uri}?source=robot"),
        None,
        Some(&echo_token),
        None,
    )
    .await;
    assert_eq!(reply.json["error"], "source must be 'canvas' or 'agent'");
    let reply = call(
        &app,
        "GET",
        &format!("/workspaces/{sum}/activity"),
        None,
        Some(&sum_token),
        None,
    )
    .await;
    assert_eq!(reply.text, "[]");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_liveness_sweep_marks_silent_workspaces_offline(db: PgPool) {
    let app = app(&db);
    let silent = workspace(&db, "Silent", None).await;
    let degraded = workspace(&db, "Degraded", None).await;
    let fresh = workspace(&db, "Fresh", None).await;
    let paused = workspace(&db, "Paused", None).await;
    let silent_token = register(&app, silent, "http://localhost:8001").await;
    register(&app, degraded, "http://localhost:8002").await;
    register(&app, fresh, "http://localhost:8003").await;
    sqlx::query("UPDATE workspaces SET status = 'degraded' WHERE id = $1")
        .bind(degraded)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE workspaces SET status = 'paused' WHERE id = $1")
        .bind(paused)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE workspaces SET last_heartbeat_at = now() - interval '10 minutes' WHERE id = ANY($1)")
        .bind(vec![silent, degraded, paused])
        .execute(&db)
        .await
        .unwrap();

    let offline = api::background::heartbeat_monitor::sweep(&db, Duration::from_secs(90))
        .await
        .unwrap();
    let mut ids: Vec<Uuid> = offline.iter().map(|w| w.workspace_id).collect();
    ids.sort();
    let mut expected = vec![silent, degraded];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(status_of(&db, silent).await, "offline");
    assert_eq!(status_of(&db, degraded).await, "offline");
    assert_eq!(status_of(&db, fresh).await, "online");
    assert_eq!(status_of(&db, paused).await, "paused");
    let last = events_of(&db, degraded).await.pop().unwrap();
    assert_eq!(
        last,
        (
            "WORKSPACE_OFFLINE".to_string(),
            json!({ "previous_status": "degraded" })
        )
    );
    assert!(
        api::background::heartbeat_monitor::sweep(&db, Duration::from_secs(90))
            .await
            .unwrap()
            .is_empty()
    );

    // The next heartbeat brings it back.
    heartbeat(&app, &silent_token, json!({ "workspace_id": silent })).await;
    assert_eq!(status_of(&db, silent).await, "online");
}

/// Concurrent first registrations of one workspace: exactly one mints and returns the token,
/// every other caller (who holds no token) is refused as a caller without the token.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_first_registrations_mint_exactly_one_token(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Racer", None).await;
    let body = json!({ "id": id, "url": "http://localhost:8001", "agent_card": card("A") });

    let attempts = (0..20).map(|_| {
        let app = app.clone();
        let body = body.clone();
        tokio::spawn(async move {
            call(&app, "POST", "/registry/register", Some(body), None, None).await
        })
    });
    let replies = futures_util::future::join_all(attempts).await;
    let replies: Vec<Reply> = replies.into_iter().map(|r| r.unwrap()).collect();

    let minted: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(minted.len(), 1, "exactly one registration succeeds");
    let token = minted[0].json["auth_token"]
        .as_str()
        .expect("it carries the token");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(
            (reply.status, reply.json["error"].as_str()),
            (
                StatusCode::UNAUTHORIZED,
                Some("missing workspace auth token")
            ),
            "{}",
            reply.text
        );
    }
    let tokens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(tokens, 1);
    let owner = store::tokens::workspace_of_token(&db, token).await.unwrap();
    assert_eq!(owner, Some(id));
}

/// The bearer is checked before the URL: a caller without the token never gets the URL rules
/// (nor their DNS lookup) applied.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn registration_checks_the_bearer_before_the_url(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Echo", None).await;
    register(&app, id, "http://localhost:8001").await;
    let reply = call(
        &app,
        "POST",
        "/registry/register",
        Some(json!({ "id": id, "url": "ftp://not-http", "agent_card": card("A") })),
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
}

/// `GET /registry/discover/{target}` as `caller`, which holds no token yet.
async fn discover_unauthenticated(app: &Router, caller: Uuid, target: Uuid) -> Reply {
    let uri = format!("/registry/discover/{target}");
    call(app, "GET", &uri, None, None, Some(caller)).await
}

/// A target that is not `online`/`degraded` is not available, even with a URL on record; an
/// external target's stored URL is re-checked against the address rules before it is handed out.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn discover_refuses_unavailable_targets_and_blocked_external_urls(db: PgPool) {
    let app = app(&db);
    let a = workspace(&db, "A", None).await;
    let b = workspace(&db, "B", None).await;
    register(&app, b, "http://localhost:8002").await;
    for status in ["offline", "paused", "failed"] {
        sqlx::query("UPDATE workspaces SET status = $2::workspace_status WHERE id = $1")
            .bind(b)
            .bind(status)
            .execute(&db)
            .await
            .unwrap();
        let reply = discover_unauthenticated(&app, a, b).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {}",
            reply.text
        );
        assert_eq!(
            reply.json,
            json!({ "error": "workspace not available", "status": status })
        );
    }

    let ext = workspace(&db, "Ext", None).await;
    sqlx::query(
        "UPDATE workspaces SET runtime = 'external', status = 'online', \
         url = 'http://169.254.169.254/latest' WHERE id = $1",
    )
    .bind(ext)
    .execute(&db)
    .await
    .unwrap();
    let reply = call(
        &app,
        "GET",
        &format!("/registry/discover/{ext}"),
        None,
        None,
        Some(a),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(
        reply.json,
        json!({ "error": "workspace not available", "status": "online" })
    );
}

/// The retention sweep deletes activities older than `ACTIVITY_RETENTION_DAYS` and keeps the
/// rest.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_retention_sweep_deletes_old_activity(db: PgPool) {
    let id = workspace(&db, "Busy", None).await;
    for age_days in [0, 29, 31, 400] {
        sqlx::query(
            "INSERT INTO activity_logs (workspace_id, activity_type, summary, created_at) \
             VALUES ($1, 'a2a_receive', $2, now() - make_interval(days => $3))",
        )
        .bind(id)
        .bind(format!("{age_days} days old"))
        .bind(age_days)
        .execute(&db)
        .await
        .unwrap();
    }
    let deleted = api::background::activity_retention::sweep(&db, 30)
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT summary FROM activity_logs ORDER BY created_at DESC")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(left, ["0 days old", "29 days old"]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn poll_mode_agents_register_without_a_url_and_share_a_secret(db: PgPool) {
    let app = app(&db);
    let id = workspace(&db, "Poller", None).await;
    let body = json!({ "id": id, "agent_card": card("P"), "delivery_mode": "poll" });
    let reply = call(&app, "POST", "/registry/register", Some(body), None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["delivery_mode"], "poll");
    let secret = reply.json["platform_inbound_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 43);
    let token = reply.json["auth_token"].as_str().unwrap().to_string();
    let stored: (Option<String>, String) =
        sqlx::query_as("SELECT url, delivery_mode FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(stored, (None, "poll".to_string()));
    let events = events_of(&db, id).await;
    assert_eq!(events[0].1["delivery_mode"], "poll");

    // A later registration without a mode keeps poll; the heartbeat hands out the same secret.
    let again = json!({ "id": id, "agent_card": card("P") });
    let reply = call(
        &app,
        "POST",
        "/registry/register",
        Some(again),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(reply.json["delivery_mode"], "poll");
    assert_eq!(reply.json["platform_inbound_secret"], secret.as_str());
    let reply = heartbeat(&app, &token, json!({ "workspace_id": id })).await;
    assert_eq!(
        reply.json,
        json!({ "platform_inbound_secret": secret, "status": "ok" })
    );
}
