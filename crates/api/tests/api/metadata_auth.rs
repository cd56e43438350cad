//! The auth chain: AdminAuth, WorkspaceAuth, the `/state` own-token check,
//! org tokens, session cookies verified against a stub control plane, and a matrix over every
//! route of the table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Reply, app, send_with, test_config, test_state};
use api::auth::{SessionCacheLimits, SessionVerifier};
use api::{Access, ApiConfig};
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN: &str = "admin-secret-token";

/// Production-like config: no dev mode.
fn strict_config(dir: &std::path::Path, admin_token: Option<&str>) -> ApiConfig {
    let mut config = test_config(dir);
    config.molecule_env = String::new();
    config.admin_token = admin_token.map(Into::into);
    config
}

async fn workspace(db: &PgPool, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn call(router: &axum::Router, method: &str, uri: &str, bearer: Option<&str>) -> Reply {
    call_as(router, method, uri, bearer, None).await
}

/// A request that names `workspace` wherever a route reads the caller from (the agents' JSON
/// body and `X-Workspace-ID`), so every guard sees the same target.
async fn call_as(
    router: &axum::Router,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    workspace: Option<Uuid>,
) -> Reply {
    let auth = bearer.map(|b| format!("Bearer {b}"));
    let named = workspace.map(|id| id.to_string());
    let mut headers: Vec<(&str, &str)> =
        auth.iter().map(|a| ("authorization", a.as_str())).collect();
    headers.extend(named.iter().map(|id| ("x-workspace-id", id.as_str())));
    let body = match workspace {
        Some(id) => json!({"id": id, "workspace_id": id, "url": "http://localhost:8000",
                           "agent_card": {"name": "agent"}}),
        None => json!({}),
    };
    send_with(router, method, uri, &headers, Some(&body)).await
}

fn concrete(path: &str, id: Uuid) -> String {
    path.replace("{id}", &id.to_string())
        .replace("{*path}", "config.yaml")
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_guarded_route_refuses_anonymous_callers_and_other_workspaces(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let target = workspace(&db, "target").await;
    let other = workspace(&db, "other").await;
    let other_token = store::tokens::mint_workspace_token(&db, other)
        .await
        .unwrap();
    // The target has a token of its own, so no bootstrap exception applies.
    store::tokens::mint_workspace_token(&db, target)
        .await
        .unwrap();
    let router = app(test_state(
        db.clone(),
        strict_config(dir.path(), Some(ADMIN)),
    ));
    let mut guarded = 0;
    for spec in api::routes::table() {
        // The live stream is open without CANVAS_PROXY_URL, as in the original.
        if matches!(spec.access, Access::Public | Access::LiveStream) {
            continue;
        }
        guarded += 1;
        let uri = concrete(spec.path, target);
        let method = spec.method.as_str();
        let anonymous = call_as(&router, method, &uri, None, Some(target)).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} without credentials: {}",
            anonymous.text
        );
        if spec.access == Access::CanvasOrBearer {
            continue; // any live workspace token may save the viewport, as in the original
        }
        let foreign = call_as(&router, method, &uri, Some(&other_token), Some(target)).await;
        assert_eq!(
            foreign.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} with another workspace's token"
        );
    }
    // Then the admin token everywhere but the agents' own routes (after the refusals: an admin
    // DELETE removes the target).
    for spec in api::routes::table() {
        let agents_only = matches!(
            spec.access,
            Access::Public
                | Access::LiveStream
                | Access::WorkspaceSelf
                | Access::AgentBody
                | Access::AgentHeader
                | Access::AgentPath
        );
        if agents_only || spec.method == "DELETE" {
            continue;
        }
        let uri = concrete(spec.path, target);
        let admin = call_as(
            &router,
            spec.method.as_str(),
            &uri,
            Some(ADMIN),
            Some(target),
        )
        .await;
        assert_ne!(
            admin.status,
            StatusCode::UNAUTHORIZED,
            "{} {uri} with ADMIN_TOKEN",
            spec.method
        );
    }
    assert!(guarded >= 12, "the table lost its guarded routes");
    // The routes this part owns carry the access the contract gives them.
    let access = |method: &str, path: &str| {
        api::routes::table()
            .into_iter()
            .find(|s| s.method == method && s.path == path)
            .unwrap()
            .access
    };
    assert_eq!(access("GET", "/workspaces/{id}"), Access::Public);
    assert_eq!(access("GET", "/workspaces"), Access::Admin);
    assert_eq!(access("POST", "/workspaces"), Access::Admin);
    assert_eq!(access("DELETE", "/workspaces/{id}"), Access::Admin);
    assert_eq!(access("PATCH", "/workspaces/{id}"), Access::Workspace);
    assert_eq!(access("PUT", "/workspaces/{id}/model"), Access::Workspace);
    assert_eq!(
        access("GET", "/workspaces/{id}/state"),
        Access::WorkspaceSelf
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_auth_follows_the_original_order(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let tier3 = app(test_state(db.clone(), strict_config(dir.path(), None)));
    // Fresh install without ADMIN_TOKEN: fail open.
    assert_eq!(
        call(&tier3, "GET", "/workspaces", None).await.status,
        StatusCode::OK
    );
    // With ADMIN_TOKEN even a fresh install is closed.
    let with_admin = app(test_state(
        db.clone(),
        strict_config(dir.path(), Some(ADMIN)),
    ));
    let reply = call(&with_admin, "GET", "/workspaces", None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "admin auth required"})
        )
    );

    let id = workspace(&db, "w").await;
    let token = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    // Tokens exist now: no bearer is refused, an unknown bearer is invalid.
    let reply = call(&tier3, "GET", "/workspaces", None).await;
    assert_eq!(reply.json, json!({"error": "admin auth required"}));
    let reply = call(&tier3, "GET", "/workspaces", Some("nonsense")).await;
    assert_eq!(reply.json, json!({"error": "invalid admin auth token"}));
    // Tier 3: without ADMIN_TOKEN any live workspace token is an admin.
    assert_eq!(
        call(&tier3, "GET", "/workspaces", Some(&token))
            .await
            .status,
        StatusCode::OK
    );
    // With ADMIN_TOKEN workspace tokens are refused (#684) and the admin token passes.
    let reply = call(&with_admin, "GET", "/workspaces", Some(&token)).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid admin auth token"})
        )
    );
    assert_eq!(
        call(&with_admin, "GET", "/workspaces", Some(ADMIN))
            .await
            .status,
        StatusCode::OK
    );
    // `Bearer` is case-sensitive.
    let lower = send_with(
        &with_admin,
        "GET",
        "/workspaces",
        &[("authorization", "bearer admin-secret-token")],
        None,
    )
    .await;
    assert_eq!(lower.status, StatusCode::UNAUTHORIZED);
    // Org tokens pass, revoked ones do not.
    let org = store::tokens::mint_org_token(&db, "ci", None)
        .await
        .unwrap();
    assert_eq!(
        call(&with_admin, "GET", "/workspaces", Some(&org))
            .await
            .status,
        StatusCode::OK
    );
    sqlx::query("UPDATE org_api_tokens SET revoked_at = now()")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        call(&with_admin, "GET", "/workspaces", Some(&org))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Forged Origin headers do not help.
    let forged = send_with(
        &with_admin,
        "GET",
        "/workspaces",
        &[("origin", "http://localhost:3000")],
        None,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    // A removed workspace's token no longer counts.
    sqlx::query("UPDATE workspaces SET status = 'removed'")
        .execute(&db)
        .await
        .unwrap();
    let other = workspace(&db, "other").await;
    store::tokens::mint_workspace_token(&db, other)
        .await
        .unwrap();
    assert_eq!(
        call(&tier3, "GET", "/workspaces", Some(&token))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Dev mode passes without anything.
    let mut dev = strict_config(dir.path(), None);
    dev.molecule_env = "development".into();
    assert_eq!(
        call(
            &app(test_state(db.clone(), dev)),
            "GET",
            "/workspaces",
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_auth_answers_503_when_the_database_is_down(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let router = app(test_state(
        db.clone(),
        strict_config(dir.path(), Some(ADMIN)),
    ));
    db.close().await;
    let reply = call(&router, "GET", "/workspaces", Some(ADMIN)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json,
        json!({"error": "platform datastore unavailable — retry shortly", "code": "platform_unavailable"})
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn workspace_auth_accepts_own_admin_and_org_tokens_only(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let id = workspace(&db, "mine").await;
    let other = workspace(&db, "theirs").await;
    let own = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    let foreign = store::tokens::mint_workspace_token(&db, other)
        .await
        .unwrap();
    let org = store::tokens::mint_org_token(&db, "org", Some(other))
        .await
        .unwrap();
    let router = app(test_state(
        db.clone(),
        strict_config(dir.path(), Some(ADMIN)),
    ));
    let uri = format!("/workspaces/{id}/model");

    let reply = call(&router, "GET", &uri, None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing workspace auth token"})
        )
    );
    let reply = call(&router, "GET", &uri, Some(&foreign)).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid workspace auth token"})
        )
    );
    for bearer in [own.as_str(), ADMIN, org.as_str()] {
        assert_eq!(
            call(&router, "GET", &uri, Some(bearer)).await.status,
            StatusCode::OK
        );
    }
    let last_used: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT last_used_at FROM workspace_auth_tokens WHERE workspace_id = $1",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        last_used.is_some(),
        "a successful lookup bumps last_used_at"
    );
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM workspace_auth_tokens WHERE workspace_id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        stored,
        store::tokens::hash_token(&own),
        "only the sha256 is stored"
    );

    // Same-origin headers alone never pass: see
    // `same_origin_canvas_requests_need_a_verified_session`.
    let same_origin = [
        ("host", "tenant.example.com"),
        ("referer", "https://tenant.example.com/ws/1"),
    ];
    let reply = send_with(&router, "GET", &uri, &same_origin, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// With `CANVAS_PROXY_URL` set, a request without a bearer whose `Origin`/`Referer` names its
/// own `Host` passes workspace auth and the live stream only with a session the control plane
/// verifies; forged headers without one, or with an outsider's session, are refused.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn same_origin_canvas_requests_need_a_verified_session(db: PgPool) {
    let (cp, calls) = stub_control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let id = workspace(&db, "canvas").await;
    store::tokens::mint_workspace_token(&db, id).await.unwrap();
    let mut config = strict_config(dir.path(), Some(ADMIN));
    config.canvas_proxy_url = Some("http://127.0.0.1:3000".into());
    config.cp_upstream_url = Some(cp);
    config.org_slug = Some("acme".into());
    let router = app(test_state(db.clone(), config));
    let uri = format!("/workspaces/{id}/model");
    let forged = |cookie: Option<&'static str>| {
        let mut headers = vec![
            ("host", "tenant.example.com"),
            ("origin", "https://tenant.example.com"),
        ];
        headers.extend(cookie.map(|c| ("cookie", c)));
        headers
    };

    for cookie in [None, Some("session=outsider"), Some("session=expired")] {
        let reply = send_with(&router, "GET", &uri, &forged(cookie), None).await;
        assert_eq!(
            (reply.status, reply.json),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "missing workspace auth token"})
            ),
            "{cookie:?}"
        );
        let reply = send_with(&router, "GET", "/ws", &forged(cookie), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "/ws {cookie:?}");
    }
    let reply = send_with(&router, "GET", &uri, &forged(Some("session=good")), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = send_with(&router, "GET", "/ws", &forged(Some("session=good")), None).await;
    assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "/ws with a session");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "each session verified once, then cached"
    );

    // A session on a request from elsewhere is not a same-origin canvas request.
    let elsewhere = [
        ("host", "tenant.example.com"),
        ("referer", "https://tenant.example.com.evil.io/"),
        ("cookie", "session=good"),
    ];
    let reply = send_with(&router, "GET", &uri, &elsewhere, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // An invalid bearer is never rescued by the same-origin path.
    let mut with_bad_bearer = forged(Some("session=good"));
    with_bad_bearer.push(("authorization", "Bearer wrong"));
    let reply = send_with(&router, "GET", &uri, &with_bad_bearer, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn state_takes_only_the_workspace_own_token_once_it_has_one(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let id = workspace(&db, "stateful").await;
    let router = app(test_state(
        db.clone(),
        strict_config(dir.path(), Some(ADMIN)),
    ));
    let uri = format!("/workspaces/{id}/state");
    // No token yet: WorkspaceAuth alone decides (the admin token passes).
    assert_eq!(
        call(&router, "GET", &uri, Some(ADMIN)).await.status,
        StatusCode::OK
    );
    let own = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    let reply = call(&router, "GET", &uri, Some(ADMIN)).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid workspace auth token"})
        )
    );
    let reply = call(&router, "GET", &uri, Some(&own)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["status"], "provisioning");
}

/// A control plane stub: `session=good` is a member, `session=outsider` is not, anything else
/// is 401. Counts its calls.
async fn stub_control_plane() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler = move |query: axum::extract::Query<std::collections::HashMap<String, String>>,
                        headers: HeaderMap| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if query.get("slug").map(String::as_str) != Some("acme") {
                return (StatusCode::FORBIDDEN, axum::Json(json!({}))).into_response();
            }
            let cookie = headers
                .get("cookie")
                .and_then(|c| c.to_str().ok())
                .unwrap_or("");
            match cookie {
                "session=good" => {
                    axum::Json(json!({"member": true, "user_id": "u1"})).into_response()
                }
                "session=outsider" => {
                    axum::Json(json!({"member": false, "user_id": "u2"})).into_response()
                }
                _ => StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    };
    use axum::response::IntoResponse;
    let stub = axum::Router::new().route("/cp/auth/tenant-member", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, stub).await.unwrap() });
    (format!("http://{address}"), calls)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_routes_accept_a_verified_session_cookie_and_cache_the_answer(db: PgPool) {
    let (cp, calls) = stub_control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = strict_config(dir.path(), Some(ADMIN));
    config.cp_upstream_url = Some(format!("{cp}/"));
    config.org_slug = Some("acme".into());
    let router = app(test_state(db.clone(), config));
    let with_cookie = |cookie: &'static str| [("cookie", cookie)];

    for _ in 0..3 {
        let reply = send_with(
            &router,
            "GET",
            "/workspaces",
            &with_cookie("session=good"),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a valid session is cached");
    for _ in 0..3 {
        let reply = send_with(
            &router,
            "GET",
            "/workspaces",
            &with_cookie("session=outsider"),
            None,
        )
        .await;
        assert_eq!(
            (reply.status, reply.json),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "admin auth required"})
            )
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "an invalid session is cached too"
    );
    // Session cookies do not open workspace routes.
    let id = workspace(&db, "w").await;
    let reply = send_with(
        &router,
        "GET",
        &format!("/workspaces/{id}/model"),
        &with_cookie("session=good"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_cache_expires_is_bounded_and_skips_transport_errors() {
    let (cp, calls) = stub_control_plane().await;
    let limits = SessionCacheLimits {
        valid_ttl: Duration::from_millis(50),
        invalid_ttl: Duration::from_millis(50),
        max_entries: 4,
    };
    let verifier = SessionVerifier::new(Some(&cp), Some("acme"), limits);
    assert!(verifier.verify("session=good").await);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(verifier.verify("session=good").await);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "an expired answer is asked again"
    );
    for n in 0..10 {
        assert!(!verifier.verify(&format!("session=stranger-{n}")).await);
        assert!(verifier.cached_entries() <= 4);
    }
    // Another tenant's slug does not share answers.
    let other_tenant =
        SessionVerifier::new(Some(&cp), Some("globex"), SessionCacheLimits::default());
    assert!(!other_tenant.verify("session=good").await);
    // Unconfigured: never valid, never asks.
    let before = calls.load(Ordering::SeqCst);
    assert!(
        !SessionVerifier::new(Some(&cp), None, limits)
            .verify("session=good")
            .await
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
    // Transport failures are not cached.
    let unreachable = SessionVerifier::new(Some("http://127.0.0.1:9"), Some("acme"), limits);
    assert!(!unreachable.verify("session=good").await);
    assert_eq!(unreachable.cached_entries(), 0);
}
