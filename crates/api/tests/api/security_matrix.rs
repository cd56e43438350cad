//! The auth and isolation matrix (issue 7.1): every route of `api::routes::table()` × every kind
//! of caller → the status the original's guards answer for the route's `Access`, and no
//! refused answer carries data of any workspace.
//!
//! The expectation is a function of `Access` × credential (an exhaustive `match`, so a new
//! `Access` does not compile without one); the request for each route is a recipe keyed by
//! method and path, so a route added to the table without a recipe fails the test.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{Reply, app, send_raw_with, test_config, test_state};
use api::routes::RouteSpec;
use api::{Access, ApiConfig};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN: &str = "matrix-admin-token";
const ORG_ID: &str = "org-7d1c";
/// Paths the tenant guard lets through without the org header.
const TENANT_ALLOWED: [&str; 6] = [
    "/health",
    "/ready",
    "/buildinfo",
    "/metrics",
    "/registry/register",
    "/registry/heartbeat",
];
/// A routable public address: accepted by the agent-URL guard in both modes without DNS.
const AGENT_URL: &str = "http://8.8.8.8:8000";

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    GarbageBearer,
    /// A live token of another workspace.
    OtherWorkspace,
    /// The subject's own token, revoked (the subject keeps another live token).
    Revoked,
    /// The own, unrevoked token of a workspace whose row is `removed`; the request targets it.
    RemovedWorkspace,
    Org,
    Admin,
    /// The subject's own live token.
    Own,
    /// `ADMIN_TOKEN` from an `Origin` outside `CORS_ORIGINS`.
    ForeignOrigin,
    /// `ADMIN_TOKEN` with the wrong `X-Molecule-Org-Id` while `MOLECULE_ORG_ID` is set.
    TenantMismatch,
    /// `ADMIN_TOKEN` with the right `X-Molecule-Org-Id` (the guard is not a blanket 404).
    TenantMatch,
}

const CALLERS: [Caller; 11] = [
    Caller::Anonymous,
    Caller::GarbageBearer,
    Caller::OtherWorkspace,
    Caller::Revoked,
    Caller::RemovedWorkspace,
    Caller::Org,
    Caller::Admin,
    Caller::Own,
    Caller::ForeignOrigin,
    Caller::TenantMismatch,
    Caller::TenantMatch,
];

/// What a call must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Through the guards: the handler answers (any status but a refusal, never a 5xx).
    Pass,
    /// `401 {"error": message}`.
    Unauthorized(&'static str),
    /// This status with an empty body (CORS 403, tenant guard 404).
    Empty(StatusCode),
}

const ADMIN_REQUIRED: Expect = Expect::Unauthorized("admin auth required");
const INVALID_ADMIN: Expect = Expect::Unauthorized("invalid admin auth token");
const MISSING_WORKSPACE: Expect = Expect::Unauthorized("missing workspace auth token");
const INVALID_WORKSPACE: Expect = Expect::Unauthorized("invalid workspace auth token");

/// The documented answer for `access` × `caller`, with `ADMIN_TOKEN` set, not in dev mode, and
/// every subject holding a live token (so no bootstrap exception applies).
fn expected(access: Access, caller: Caller, path: &str) -> Expect {
    use Caller::*;
    match caller {
        // CORS runs first: a foreign Origin is refused on every route, whatever it carries.
        ForeignOrigin => return Expect::Empty(StatusCode::FORBIDDEN),
        TenantMismatch if !TENANT_ALLOWED.contains(&path) => {
            return Expect::Empty(StatusCode::NOT_FOUND);
        }
        TenantMismatch | TenantMatch => return expected(access, Admin, path),
        _ => {}
    }
    match access {
        // Without CANVAS_PROXY_URL (as here) the live stream is open, as in the original.
        Access::Public | Access::LiveStream => Expect::Pass,
        // AdminAuth: org tokens and ADMIN_TOKEN only; workspace tokens are refused (#684).
        Access::Admin => match caller {
            Anonymous => ADMIN_REQUIRED,
            Org | Admin => Expect::Pass,
            _ => INVALID_ADMIN,
        },
        // WorkspaceAuth: ADMIN_TOKEN, any org token, or this workspace's own live token.
        Access::Workspace => match caller {
            Anonymous => MISSING_WORKSPACE,
            Org | Admin | Own => Expect::Pass,
            _ => INVALID_WORKSPACE,
        },
        // `/state`: once the workspace has a token, only that token (admin and org too
        // are refused, as in the original).
        Access::WorkspaceSelf => match caller {
            Anonymous => MISSING_WORKSPACE,
            Own => Expect::Pass,
            _ => INVALID_WORKSPACE,
        },
        // The test-token gate: only ADMIN_TOKEN when it is set.
        Access::TestToken => match caller {
            Admin => Expect::Pass,
            _ => ADMIN_REQUIRED,
        },
        // CanvasOrBearer (PUT /canvas/viewport): ADMIN_TOKEN or any live workspace token of a
        // workspace that is not removed; org tokens refused; no bearer needs an allowed Origin.
        Access::CanvasOrBearer => match caller {
            Anonymous => ADMIN_REQUIRED,
            Admin | Own | OtherWorkspace => Expect::Pass,
            _ => INVALID_ADMIN,
        },
        // The agents' routes: the named workspace's own bearer once it has one.
        Access::AgentBody | Access::AgentHeader | Access::AgentPath => match caller {
            Anonymous => MISSING_WORKSPACE,
            Own => Expect::Pass,
            _ => INVALID_WORKSPACE,
        },
    }
}

/// The concrete request for one route against `subject`.
#[derive(Debug)]
struct Recipe {
    uri: String,
    body: Option<Value>,
    /// Discovery names its caller in `X-Workspace-ID`.
    caller_header: bool,
    /// Run against a throwaway workspace (the admin DELETE removes it).
    disposable: bool,
}

/// A recipe for every route of the table; `None` for a route the matrix does not know yet.
fn recipe(spec: &RouteSpec, subject: Uuid, n: usize) -> Option<Recipe> {
    let with = |body: Value| Some(body);
    let (suffix, body, caller_header, disposable) = match (spec.method.as_str(), spec.path) {
        ("GET", "/health" | "/ready" | "/buildinfo" | "/metrics" | "/admin/liveness") => {
            ("", None, false, false)
        }
        ("GET", "/workspaces" | "/events" | "/events/{workspaceId}" | "/templates" | "/ws") => {
            ("", None, false, false)
        }
        ("POST", "/workspaces") => (
            "",
            with(json!({"name": format!("matrix-new-{n}")})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}" | "/workspaces/{id}/state") => ("", None, false, false),
        ("PATCH", "/workspaces/{id}") => ("", with(json!({"collapsed": true})), false, false),
        ("DELETE", "/workspaces/{id}") => ("?confirm=true", None, false, true),
        ("GET", "/workspaces/{id}/model" | "/workspaces/{id}/provider") => ("", None, false, false),
        ("PUT", "/workspaces/{id}/model") => {
            ("", with(json!({"model": "anthropic/claude"})), false, false)
        }
        ("PUT", "/workspaces/{id}/provider") => {
            ("", with(json!({"provider": "anthropic"})), false, false)
        }
        ("GET", "/admin/workspaces/{id}/test-token") => ("", None, false, false),
        ("PUT", "/admin/workspaces/{id}/instance") => {
            ("", with(json!({"instance_id": null})), false, false)
        }
        ("POST", "/registry/register") => (
            "",
            with(json!({"id": subject, "url": AGENT_URL, "agent_card": {"name": "agent"}})),
            false,
            false,
        ),
        ("POST", "/registry/heartbeat") => {
            ("", with(json!({"workspace_id": subject})), false, false)
        }
        ("POST", "/registry/update-card") => (
            "",
            with(json!({"workspace_id": subject, "agent_card": {"name": "agent"}})),
            false,
            false,
        ),
        ("GET", "/registry/discover/{id}") => ("", None, true, false),
        ("GET", "/registry/{id}/peers") => ("", None, false, false),
        ("POST", "/registry/check-access") => (
            "",
            with(json!({"caller_id": subject.to_string(), "target_id": subject.to_string()})),
            false,
            false,
        ),
        ("POST", "/workspaces/{id}/activity") => (
            "",
            with(json!({"activity_type": "agent_log", "summary": "matrix"})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}/activity") => ("", None, false, false),
        ("POST", "/workspaces/{id}/notify") => {
            ("", with(json!({"message": "matrix"})), false, false)
        }
        ("GET", "/workspaces/{id}/a2a/queue/{queue_id}") => ("", None, false, false),
        ("GET", "/workspaces/{id}/events/stream") => ("", None, false, false),
        ("GET", "/workspaces/{id}/chat-history") => ("", None, false, false),
        ("GET", "/workspaces/{id}/session-search") => ("?q=matrix", None, false, false),
        // Not multipart: the handler's own 400, before any agent is called.
        ("POST", "/workspaces/{id}/chat/uploads") => ("", with(json!({})), false, false),
        // No path: the handler's own 400.
        ("GET", "/workspaces/{id}/chat/download") => ("", None, false, false),
        ("GET", "/workspaces/{id}/pending-uploads/{file_id}/content")
        | ("POST", "/workspaces/{id}/pending-uploads/{file_id}/ack") => ("", None, false, false),
        // The nil target does not exist: the background call fails at once.
        ("POST", "/workspaces/{id}/delegate") => (
            "",
            with(json!({"target_id": Uuid::nil(), "task": "matrix"})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}/delegations")
        | ("GET", "/admin/delegations" | "/admin/delegations/stats") => ("", None, false, false),
        ("POST", "/workspaces/{id}/delegations/record") => (
            "",
            with(
                json!({"target_id": Uuid::nil(), "task": "matrix", "delegation_id": format!("matrix-{n}")}),
            ),
            false,
            false,
        ),
        ("POST", "/workspaces/{id}/delegations/{delegation_id}/update") => (
            "",
            with(json!({"status": "failed", "error": "matrix"})),
            false,
            false,
        ),
        ("POST", "/admin/a2a-queue/drop-stale") => ("?max_age_minutes=600", None, false, false),
        // Through the caller checks to the payload's own 400: no agent is called.
        ("POST", "/workspaces/{id}/a2a") => (
            "",
            with(json!({"method": "message/send", "params": {"message": {"role": "user"}}})),
            false,
            false,
        ),
        ("GET", "/bundles/export/{id}" | "/org/templates") => ("", None, false, false),
        ("POST", "/bundles/import") => (
            "",
            with(json!({"name": format!("matrix-bundle-{n}")})),
            false,
            false,
        ),
        ("POST", "/org/import") => (
            "",
            with(
                json!({"template": {"name": format!("matrix-org-{n}"), "workspaces": [{"name": format!("matrix-org-ws-{n}")}]}}),
            ),
            false,
            false,
        ),
        ("POST", "/templates/import") => (
            "",
            with(json!({"name": format!("matrix-template-{n}"), "files": {"a.txt": "x"}})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}/files") => ("", None, false, false),
        ("PUT", "/workspaces/{id}/files") => (
            "",
            with(json!({"files": {"scratch.txt": "x"}})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}/files/{*path}") => ("", None, false, false),
        ("PUT", "/workspaces/{id}/files/{*path}") => {
            ("", with(json!({"content": "x"})), false, false)
        }
        ("DELETE", "/workspaces/{id}/files/{*path}") => ("", None, false, false),
        ("GET", "/workspaces/{id}/terminal" | "/workspaces/{id}/terminal/diagnose") => {
            ("", None, false, false)
        }
        ("GET", "/openapi.json") => ("", None, false, false),
        (
            "GET",
            "/workspaces/{id}/secrets"
            | "/workspaces/{id}/secrets/values"
            | "/workspaces/{id}/secrets/{key}/dependents"
            | "/settings/secrets"
            | "/settings/secrets/{key}/dependents"
            | "/admin/secrets"
            | "/workspaces/{id}/tokens"
            | "/org/tokens"
            | "/workspaces/{id}/external/connection"
            | "/workspaces/{id}/config"
            | "/workspaces/{id}/transcript",
        ) => ("", None, false, false),
        ("POST" | "PUT", "/workspaces/{id}/secrets" | "/settings/secrets" | "/admin/secrets") => (
            "",
            with(json!({"key": "MATRIX_KEY", "value": "matrix-value"})),
            false,
            false,
        ),
        (
            "DELETE",
            "/workspaces/{id}/secrets/{key}"
            | "/settings/secrets/{key}"
            | "/admin/secrets/{key}"
            | "/workspaces/{id}/tokens/{tokenId}"
            | "/org/tokens/{id}",
        ) => ("", None, false, false),
        ("POST", "/workspaces/{id}/tokens" | "/workspaces/{id}/external/rotate") => {
            ("", with(json!({})), false, false)
        }
        ("POST", "/org/tokens") => ("", with(json!({"name": "matrix"})), false, false),
        ("PATCH", "/workspaces/{id}/config") => ("", with(json!({"matrix": true})), false, false),
        ("GET", "/canvas/viewport" | "/approvals/pending") => ("", None, false, false),
        ("PUT", "/canvas/viewport") => ("", with(json!({"x": 1, "y": 2, "zoom": 1})), false, false),
        ("POST", "/workspaces/{id}/approvals") => {
            ("", with(json!({"action": "matrix"})), false, false)
        }
        ("POST", "/workspaces/{id}/approvals/{approvalId}/decide") => {
            ("", with(json!({"decision": "approved"})), false, false)
        }
        ("GET", "/workspaces/{id}/approvals" | "/workspaces/{id}/budget") => {
            ("", None, false, false)
        }
        ("PATCH", "/workspaces/{id}/budget") => {
            ("", with(json!({"budget_limit": 100})), false, false)
        }
        (
            "GET",
            "/workspaces/{id}/metrics" | "/workspaces/{id}/audit" | "/workspaces/{id}/traces",
        ) => ("", None, false, false),
        ("POST", "/workspaces/{id}/memories") => (
            "",
            with(json!({"content": "matrix note", "scope": "LOCAL"})),
            false,
            false,
        ),
        ("PATCH", "/workspaces/{id}/memories/{memoryId}") => {
            ("", with(json!({"content": "x"})), false, false)
        }
        ("GET", "/workspaces/{id}/memories" | "/workspaces/{id}/v2/namespaces")
        | ("GET", "/workspaces/{id}/v2/memories" | "/workspaces/{id}/memory")
        | ("GET", "/workspaces/{id}/memory/{key}" | "/admin/memories/export")
        | ("DELETE", "/workspaces/{id}/memories/{memoryId}" | "/workspaces/{id}/memory/{key}")
        | ("DELETE", "/workspaces/{id}/v2/memories/{memoryId}") => ("", None, false, false),
        ("POST", "/admin/memories/import") => ("", with(json!([])), false, false),
        ("POST", "/workspaces/{id}/memory") => (
            "",
            with(json!({"key": format!("k{n}"), "value": n})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}/schedules" | "/workspaces/{id}/schedules/health")
        | ("GET", "/workspaces/{id}/schedules/{scheduleId}/history" | "/admin/schedules/health")
        | ("DELETE", "/workspaces/{id}/schedules/{scheduleId}")
        | ("POST", "/workspaces/{id}/schedules/{scheduleId}/run") => ("", None, false, false),
        ("POST", "/workspaces/{id}/schedules") => (
            "",
            with(json!({"name": format!("matrix-{n}"), "cron_expr": "0 9 * * *", "prompt": "p"})),
            false,
            false,
        ),
        ("PATCH", "/workspaces/{id}/schedules/{scheduleId}") => {
            ("", with(json!({"name": "renamed"})), false, false)
        }
        (
            "POST",
            "/workspaces/{id}/restart"
            | "/workspaces/{id}/hibernate"
            | "/workspaces/{id}/pause"
            | "/workspaces/{id}/resume",
        ) => ("", None, false, false),
        ("GET", "/workspaces/{id}/console") => ("", None, false, false),
        ("POST", "/admin/workspaces/{id}/bootstrap-failed") => {
            ("", with(json!({"error": "matrix"})), false, false)
        }
        ("GET", "/plugins" | "/plugins/sources" | "/workspaces/{id}/plugins")
        | ("GET", "/workspaces/{id}/plugins/available" | "/orgs/{id}/plugins/allowlist")
        | ("DELETE", "/workspaces/{id}/plugins/{name}") => ("", None, false, false),
        ("GET", "/workspaces/{id}/plugins/compatibility") => {
            ("?runtime=claude-code", None, false, false)
        }
        // Through the guard to the fetch: the matrix has no registry, so 404.
        ("POST", "/workspaces/{id}/plugins") => (
            "",
            with(json!({"source": "local://matrix-plugin"})),
            false,
            false,
        ),
        ("GET", "/workspaces/{id}/plugins/{name}/download") => ("", None, false, false),
        ("PUT", "/orgs/{id}/plugins/allowlist") => (
            "",
            with(json!({"plugins": [], "enabled_by": "matrix"})),
            false,
            false,
        ),
        _ => return None,
    };
    // Reads target the planted secret file; writes and deletes a scratch file.
    let file = if spec.method == "GET" {
        "secret.txt"
    } else {
        "scratch.txt"
    };
    let path = spec
        .path
        .replace("{id}", &subject.to_string())
        .replace("{workspaceId}", &subject.to_string())
        .replace("{*path}", file)
        .replace("{key}", "MATRIX_KEY")
        .replace("{name}", "matrix-plugin")
        .replace("{tokenId}", &Uuid::nil().to_string())
        .replace("{approvalId}", &Uuid::new_v4().to_string())
        .replace("{memoryId}", &Uuid::nil().to_string())
        .replace("{scheduleId}", &Uuid::nil().to_string())
        .replace("{queue_id}", &Uuid::new_v4().to_string())
        .replace("{file_id}", &Uuid::nil().to_string())
        .replace("{delegation_id}", "matrix-delegation");
    Some(Recipe {
        uri: format!("{path}{suffix}"),
        body,
        caller_header,
        disposable,
    })
}

/// The workspaces and credentials of the matrix, with data that must never leak.
struct World {
    target: Uuid,
    other: Uuid,
    removed: Uuid,
    own_token: String,
    revoked_token: String,
    other_token: String,
    removed_token: String,
    org_token: String,
    /// Names, secret values and file contents of every workspace.
    markers: Vec<String>,
}

impl World {
    fn bearer(&self, caller: Caller) -> Option<&str> {
        use Caller::*;
        match caller {
            Anonymous => None,
            GarbageBearer => Some("garbage-not-a-token"),
            OtherWorkspace => Some(&self.other_token),
            Revoked => Some(&self.revoked_token),
            RemovedWorkspace => Some(&self.removed_token),
            Org => Some(&self.org_token),
            Admin | ForeignOrigin | TenantMismatch | TenantMatch => Some(ADMIN),
            Own => Some(&self.own_token),
        }
    }

    /// The workspace a caller's requests are about.
    fn subject(&self, caller: Caller) -> Uuid {
        match caller {
            Caller::RemovedWorkspace => self.removed,
            _ => self.target,
        }
    }
}

async fn insert_workspace(db: &PgPool, name: &str) -> Uuid {
    common::insert_workspace(db, name, "langgraph", None).await
}

async fn plant_secrets(db: &PgPool, id: Uuid, marker: &str) {
    let crypto = store::crypto::Crypto::disabled();
    store::secrets::upsert(db, &crypto, id, "API_KEY", &format!("{marker}-secret"))
        .await
        .unwrap();
    store::secrets::upsert(
        db,
        &crypto,
        id,
        store::secrets::MODEL_KEY,
        &format!("{marker}/model"),
    )
    .await
    .unwrap();
}

fn plant_file(workspaces_dir: &Path, id: Uuid, marker: &str) {
    let configs = workspaces_dir.join(id.to_string()).join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    std::fs::write(configs.join("secret.txt"), format!("{marker}-file-content")).unwrap();
}

async fn build_world(db: &PgPool, workspaces_dir: &Path) -> World {
    let mut markers = Vec::new();
    let mut ids = Vec::new();
    for name in ["target", "other", "removed"] {
        let marker = format!("{name}-{}", Uuid::new_v4().simple());
        let id = insert_workspace(db, &marker).await;
        plant_secrets(db, id, &marker).await;
        plant_file(workspaces_dir, id, &marker);
        markers.extend([
            marker.clone(),
            format!("{marker}-secret"),
            format!("{marker}/model"),
            format!("{marker}-file-content"),
        ]);
        ids.push(id);
    }
    let [target, other, removed] = ids[..] else {
        unreachable!()
    };
    let mint = |id| store::tokens::mint_workspace_token(db, id);
    let revoked_token = mint(target).await.unwrap();
    sqlx::query("UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1")
        .bind(target)
        .execute(db)
        .await
        .unwrap();
    let own_token = mint(target).await.unwrap();
    let other_token = mint(other).await.unwrap();
    let removed_token = mint(removed).await.unwrap();
    // Removed without revoking its token: the row's status alone must shut the token out.
    sqlx::query("UPDATE workspaces SET status = 'removed' WHERE id = $1")
        .bind(removed)
        .execute(db)
        .await
        .unwrap();
    let org_token = store::tokens::mint_org_token(db, "matrix", None)
        .await
        .unwrap();
    World {
        target,
        other,
        removed,
        own_token,
        revoked_token,
        other_token,
        removed_token,
        org_token,
        markers,
    }
}

fn strict_config(dir: &Path, org_id: Option<&str>) -> ApiConfig {
    let mut config = test_config(dir);
    config.molecule_env = String::new();
    config.admin_token = Some(ADMIN.into());
    config.org_id = org_id.map(str::to_string);
    config
}

async fn call(
    router: &Router,
    world: &World,
    caller: Caller,
    spec: &RouteSpec,
    recipe: &Recipe,
    subject: Uuid,
) -> Reply {
    let auth = world.bearer(caller).map(|b| format!("Bearer {b}"));
    let named = subject.to_string();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    if recipe.caller_header {
        headers.push(("x-workspace-id", &named));
    }
    match caller {
        Caller::ForeignOrigin => headers.push(("origin", "https://evil.example")),
        Caller::TenantMismatch => headers.push(("x-molecule-org-id", "org-someone-else")),
        Caller::TenantMatch => headers.push(("x-molecule-org-id", ORG_ID)),
        _ => {}
    }
    let body = recipe
        .body
        .as_ref()
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    send_raw_with(router, spec.method.as_str(), &recipe.uri, &headers, body).await
}

/// An authorised call that this deployment cannot serve: no provisioner (503) or no control
/// plane for the console (501).
fn lacks_backend(reply: &Reply) -> bool {
    let message = reply.json["error"].as_str().unwrap_or_default();
    (reply.status == StatusCode::SERVICE_UNAVAILABLE && message == "provisioner not available")
        || (reply.status == StatusCode::NOT_IMPLEMENTED
            && message.starts_with("console output unavailable"))
}

fn check(reply: &Reply, expect: Expect, what: &str) -> Result<(), String> {
    let ok = match expect {
        Expect::Pass => {
            let refused = reply.status == StatusCode::UNAUTHORIZED
                || (reply.text.is_empty()
                    && matches!(reply.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND));
            !refused && (!reply.status.is_server_error() || lacks_backend(reply))
        }
        Expect::Unauthorized(message) => {
            reply.status == StatusCode::UNAUTHORIZED && reply.json == json!({ "error": message })
        }
        Expect::Empty(status) => reply.status == status && reply.text.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {expect:?}, got {} {}",
            reply.status, reply.text
        ))
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_route_answers_every_caller_as_documented_and_refusals_leak_nothing(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let config = strict_config(dir.path(), None);
    let world = build_world(&db, &config.workspaces_dir).await;
    let plain = app(test_state(db.clone(), config));
    let tenant = app(test_state(
        db.clone(),
        strict_config(dir.path(), Some(ORG_ID)),
    ));
    let sequence = AtomicUsize::new(0);

    let table = api::routes::table();
    let missing: Vec<String> = table
        .iter()
        .filter(|spec| recipe(spec, world.target, 0).is_none())
        .map(|spec| format!("{} {}", spec.method, spec.path))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a recipe in the security matrix (add one): {missing:?}"
    );

    let mut failures = Vec::new();
    let mut calls = 0;
    for spec in &table {
        for caller in CALLERS {
            let n = sequence.fetch_add(1, Ordering::Relaxed);
            let mut subject = world.subject(caller);
            let recipe_for_subject = recipe(spec, subject, n).unwrap();
            if recipe_for_subject.disposable {
                subject = insert_workspace(&db, &format!("disposable-{n}")).await;
            }
            let recipe = recipe(spec, subject, n).unwrap();
            let router = match caller {
                Caller::TenantMismatch | Caller::TenantMatch => &tenant,
                _ => &plain,
            };
            let reply = call(router, &world, caller, spec, &recipe, subject).await;
            calls += 1;
            let what = format!("{caller:?} {} {}", spec.method, recipe.uri);
            let expect = expected(spec.access, caller, spec.path);
            if let Err(failure) = check(&reply, expect, &what) {
                failures.push(failure);
            }
            if expect != Expect::Pass {
                // A refusal names no workspace and carries none of their data.
                let ids = [world.target, world.other, world.removed].map(|id| id.to_string());
                for marker in world.markers.iter().chain(ids.iter()) {
                    if reply.text.contains(marker.as_str()) {
                        failures.push(format!("{what}: refusal leaks {marker}: {}", reply.text));
                    }
                }
            }
            // Secret values never appear in any answer, authorised or not, except the
            // workspace's own values in the bundle its own agent reads.
            let own_bundle =
                spec.path == "/workspaces/{id}/secrets/values" && expect == Expect::Pass;
            let foreign = |m: &&String| !(own_bundle && m.starts_with("target-"));
            for marker in world
                .markers
                .iter()
                .filter(|m| m.ends_with("-secret"))
                .filter(foreign)
            {
                if reply.text.contains(marker.as_str()) {
                    failures.push(format!("{what}: answer contains secret {marker}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} calls broke the matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        calls >= 35 * CALLERS.len(),
        "the table lost routes: {calls} calls"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_authorised_caller_reads_its_own_data_not_another_workspaces(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let config = strict_config(dir.path(), None);
    let world = build_world(&db, &config.workspaces_dir).await;
    let router = app(test_state(db.clone(), config));
    let other_markers: Vec<&String> = world
        .markers
        .iter()
        .filter(|m| m.starts_with("other-"))
        .collect();
    let own = Some(world.own_token.as_str());
    for uri in [
        format!("/workspaces/{}/files/secret.txt", world.target),
        format!("/workspaces/{}/files", world.target),
        format!("/workspaces/{}/model", world.target),
        format!("/workspaces/{}/activity", world.target),
        format!("/workspaces/{}", world.target),
    ] {
        let auth = own.map(|t| format!("Bearer {t}")).unwrap();
        let reply = send_raw_with(
            &router,
            "GET",
            &uri,
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "GET {uri}: {}", reply.text);
        for marker in &other_markers {
            assert!(
                !reply.text.contains(marker.as_str()),
                "GET {uri} shows {marker}"
            );
        }
        assert!(
            !reply.text.contains(&world.other.to_string()),
            "GET {uri} names the other workspace"
        );
    }
    // The own token reads its own file (the matrix's Pass is real access, not a lucky status).
    let auth = format!("Bearer {}", world.own_token);
    let reply = send_raw_with(
        &router,
        "GET",
        &format!("/workspaces/{}/files/secret.txt", world.target),
        &[("authorization", &auth)],
        Vec::new(),
    )
    .await;
    assert!(
        reply.json["content"]
            .as_str()
            .unwrap()
            .ends_with("-file-content")
    );
    // An activity cannot be attributed to another workspace.
    let reply = send_raw_with(
        &router,
        "POST",
        &format!("/workspaces/{}/activity", world.target),
        &[("authorization", &auth)],
        serde_json::to_vec(
            &json!({"activity_type": "agent_log", "source_id": world.other.to_string()}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
}
