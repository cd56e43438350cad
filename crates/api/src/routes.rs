//! The route table: every route of the server with the access rule that guards it and the
//! handler that documents it.
//!
//! One row per route, in this format:
//!
//! ```text
//! route!(GET "/workspaces/{id}", Public, workspaces::get),
//! ```
//!
//! method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`), path (axum syntax), [`Access`] rule, handler.
//! The handler carries its own `#[utoipa::path(...)]` (params, request body, every response with
//! its type); the row serves the handler AND contributes its operation to `/openapi.json`
//! ([`crate::openapi::document`] walks this table, taking security from the row's access), so a
//! new route is its handler plus this one line. A route cannot be added without choosing its
//! [`Access`]; `tests/` walks [`table`] to check that every non-public route refuses anonymous
//! callers and other workspaces' tokens.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};

use crate::AppState;
use crate::agents::{activity, discovery, registry};
use crate::external::handlers as external;
use crate::files::handlers as files;
use crate::memories::{kv, v1 as memories_v1, v2 as memories_v2};
use crate::panels::{approvals, audit, budget, traces, viewport};
use crate::plugins::{allowlist as plugin_allowlist, handlers as plugins};
use crate::schedules::{handlers as schedules, health as schedule_health};
use crate::settings::{config, org_tokens, secrets, tokens, transcript};
use crate::workspaces::model;
use crate::{
    admin, bundles, events, lifecycle, messaging, openapi, ops, org, templates, terminal,
    workspaces,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (still subject to CORS, rate limit and the tenant guard).
    Public,
    /// AdminAuth: `ADMIN_TOKEN`, an org token, a verified canvas session, or (fresh install,
    /// dev mode) nobody (the original's `middleware/wsauth_middleware.go`, `AdminAuth`).
    Admin,
    /// WorkspaceAuth on the `{id}` of the path: that workspace's own token, `ADMIN_TOKEN` or an
    /// org token (`WorkspaceAuth` there).
    Workspace,
    /// WorkspaceAuth, then only the workspace's own token once it has one (`/state`).
    WorkspaceSelf,
    /// The test-token bootstrap's own gate: `MOLECULE_ENV`, `MOLECULE_ENABLE_TEST_TOKENS`,
    /// `ADMIN_TOKEN`.
    TestToken,
    /// The agent's own bearer for the workspace its JSON body names (`/registry/register`,
    /// `heartbeat`, `update-card`); a workspace without a live token yet passes. Checked by the
    /// handler once the body is parsed (`agents::guard::require_agent_token`).
    AgentBody,
    /// Discovery: the bearer of the workspace named by the required `X-Workspace-ID` header;
    /// dev mode, a canvas session or a workspace without a live token pass.
    AgentHeader,
    /// Discovery of one's own peers: like `AgentHeader` for the `{id}` of the path.
    AgentPath,
    /// CanvasOrBearer: `ADMIN_TOKEN` or any live workspace token (org tokens refused); without a
    /// bearer, an allowed `Origin` or the same-origin canvas; everyone before the first token.
    CanvasOrBearer,
    /// The live stream: an agent naming itself in `X-Workspace-ID` is checked by the handler;
    /// a canvas subscriber (every event) is open as in the original unless `CANVAS_PROXY_URL`
    /// is set, where it needs `ADMIN_TOKEN`, an org token or a verified canvas session.
    LiveStream,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// A row of the table: what it serves and how it is documented.
pub(crate) struct Route {
    pub(crate) spec: RouteSpec,
    pub(crate) handler: MethodRouter<AppState>,
    /// The handler's `#[utoipa::path]` operation, as a document of its own (with the schemas it
    /// references), built only when `/openapi.json` is.
    pub(crate) doc: fn() -> utoipa::openapi::OpenApi,
}

/// One row: `route!(METHOD "path", Access, handler)`, or `…, handler; layer = L)` for a handler
/// with a layer of its own (see the module's documentation).
macro_rules! route {
    ($method:ident $path:literal, $access:ident, $($handler:ident)::+) => {
        Route {
            spec: RouteSpec {
                method: Method::$method,
                path: $path,
                access: Access::$access,
            },
            handler: axum::routing::on(MethodFilter::$method, $($handler)::+),
            doc: {
                // The derive finds the operation that `#[utoipa::path]` generated for the
                // handler, and the schemas it references.
                #[derive(utoipa::OpenApi)]
                #[openapi(paths($($handler)::+))]
                struct Operation;
                <Operation as utoipa::OpenApi>::openapi
            },
        }
    };
    // A row whose handler needs a layer of its own (e.g. a per-route limiter).
    ($method:ident $path:literal, $access:ident, $($handler:ident)::+; layer = $layer:expr) => {{
        let mut row = route!($method $path, $access, $($handler)::+);
        row.handler = row.handler.layer($layer);
        row
    }};
}

#[rustfmt::skip]
pub(crate) fn routes() -> Vec<Route> {
    vec![
        route!(GET "/health", Public, ops::health),
        route!(GET "/ready", Public, ops::ready),
        route!(GET "/buildinfo", Public, ops::buildinfo),
        route!(GET "/metrics", Public, ops::metrics),
        route!(GET "/openapi.json", Public, openapi::serve),
        route!(GET "/admin/liveness", Admin, admin::liveness),
        route!(GET "/workspaces", Admin, workspaces::list),
        route!(POST "/workspaces", Admin, workspaces::create),
        route!(GET "/workspaces/{id}", Public, workspaces::get),
        route!(PATCH "/workspaces/{id}", Workspace, workspaces::update),
        route!(DELETE "/workspaces/{id}", Admin, workspaces::delete),
        route!(GET "/workspaces/{id}/state", WorkspaceSelf, workspaces::state),
        route!(GET "/workspaces/{id}/model", Workspace, model::get_model),
        route!(PUT "/workspaces/{id}/model", Workspace, model::put_model),
        route!(GET "/workspaces/{id}/provider", Workspace, model::get_provider),
        route!(PUT "/workspaces/{id}/provider", Workspace, model::put_provider),
        route!(GET "/admin/workspaces/{id}/test-token", TestToken, admin::test_token),
        route!(PUT "/admin/workspaces/{id}/instance", Admin, admin::set_instance),
        route!(POST "/admin/workspaces/{id}/bootstrap-failed", Admin, lifecycle::bootstrap::bootstrap_failed),
        route!(POST "/workspaces/{id}/restart", Workspace, lifecycle::restart::restart),
        route!(POST "/workspaces/{id}/pause", Workspace, lifecycle::pause::pause),
        route!(POST "/workspaces/{id}/resume", Workspace, lifecycle::pause::resume),
        route!(POST "/workspaces/{id}/hibernate", Workspace, lifecycle::hibernate::hibernate),
        route!(GET "/workspaces/{id}/console", Admin, lifecycle::console::console),
        route!(POST "/registry/register", AgentBody, registry::register),
        route!(POST "/registry/heartbeat", AgentBody, registry::heartbeat),
        route!(POST "/registry/update-card", AgentBody, registry::update_card),
        route!(GET "/registry/discover/{id}", AgentHeader, discovery::discover),
        route!(GET "/registry/{id}/peers", AgentPath, discovery::peers),
        route!(POST "/registry/check-access", Public, discovery::check_access),
        route!(GET "/events", Admin, events::list),
        route!(GET "/events/{workspaceId}", Admin, events::list_for_workspace),
        // The canvas subscribes without credentials (as in the original); agents naming
        // themselves with `X-Workspace-ID` are checked by the handler before the upgrade.
        route!(GET "/ws", LiveStream, events::socket),
        route!(POST "/workspaces/{id}/activity", Workspace, activity::report),
        route!(GET "/workspaces/{id}/activity", Workspace, activity::list),
        // No guard, as in the original: the handler identifies the caller (canvas, peer, self)
        // and checks a peer's token and the hierarchy itself.
        route!(POST "/workspaces/{id}/a2a", Public, messaging::proxy::proxy),
        route!(POST "/workspaces/{id}/notify", Workspace, messaging::notify::notify),
        // No guard: the caller that queued the request, or its target, identified by the handler.
        route!(GET "/workspaces/{id}/a2a/queue/{queue_id}", Public, messaging::queue::status),
        route!(POST "/admin/a2a-queue/drop-stale", Admin, messaging::queue::drop_stale),
        route!(GET "/workspaces/{id}/events/stream", Workspace, messaging::stream::stream),
        route!(GET "/workspaces/{id}/chat-history", Workspace, messaging::history::history),
        route!(GET "/workspaces/{id}/session-search", Workspace, messaging::session_search::search),
        route!(POST "/workspaces/{id}/chat/uploads", Workspace, messaging::uploads::upload),
        route!(GET "/workspaces/{id}/chat/download", Workspace, messaging::uploads::download),
        route!(GET "/workspaces/{id}/pending-uploads/{file_id}/content", Workspace, messaging::uploads::pending_content),
        route!(POST "/workspaces/{id}/pending-uploads/{file_id}/ack", Workspace, messaging::uploads::ack),
        route!(POST "/workspaces/{id}/delegate", Workspace, messaging::delegations::delegate),
        route!(GET "/workspaces/{id}/delegations", Workspace, messaging::delegations::list),
        route!(POST "/workspaces/{id}/delegations/record", Workspace, messaging::delegations::record),
        route!(POST "/workspaces/{id}/delegations/{delegation_id}/update", Workspace, messaging::delegations::update),
        route!(GET "/admin/delegations", Admin, messaging::delegations::admin_list),
        route!(GET "/admin/delegations/stats", Admin, messaging::delegations::admin_stats),
        route!(GET "/templates", Admin, templates::list),
        route!(POST "/templates/import", Admin, templates::import),
        route!(GET "/bundles/export/{id}", Admin, bundles::export),
        route!(POST "/bundles/import", Admin, bundles::import),
        route!(GET "/org/templates", Admin, org::list),
        route!(POST "/org/import", Admin, org::import),
        route!(GET "/workspaces/{id}/files", Workspace, files::list),
        route!(PUT "/workspaces/{id}/files", Workspace, files::replace),
        route!(GET "/workspaces/{id}/files/{*path}", Workspace, files::read),
        route!(PUT "/workspaces/{id}/files/{*path}", Workspace, files::write),
        route!(DELETE "/workspaces/{id}/files/{*path}", Workspace, files::delete),
        route!(GET "/workspaces/{id}/secrets", Workspace, secrets::list),
        route!(POST "/workspaces/{id}/secrets", Workspace, secrets::post),
        route!(PUT "/workspaces/{id}/secrets", Workspace, secrets::put),
        // Plaintext values: once the workspace has a token, only that token (as /state).
        route!(GET "/workspaces/{id}/secrets/values", WorkspaceSelf, secrets::values),
        route!(DELETE "/workspaces/{id}/secrets/{key}", Workspace, secrets::delete),
        route!(GET "/workspaces/{id}/secrets/{key}/dependents", Workspace, secrets::workspace_dependents),
        route!(GET "/settings/secrets", Admin, secrets::list_global),
        route!(PUT "/settings/secrets", Admin, secrets::set_global),
        route!(POST "/settings/secrets", Admin, secrets::post_global),
        route!(DELETE "/settings/secrets/{key}", Admin, secrets::delete_global),
        route!(GET "/settings/secrets/{key}/dependents", Admin, secrets::global_dependents),
        route!(GET "/admin/secrets", Admin, secrets::admin_list_global),
        route!(POST "/admin/secrets", Admin, secrets::admin_set_global),
        route!(DELETE "/admin/secrets/{key}", Admin, secrets::admin_delete_global),
        route!(GET "/workspaces/{id}/tokens", Workspace, tokens::list),
        route!(POST "/workspaces/{id}/tokens", Workspace, tokens::create),
        route!(DELETE "/workspaces/{id}/tokens/{tokenId}", Workspace, tokens::revoke),
        route!(GET "/org/tokens", Admin, org_tokens::list),
        // The mint limiter is this route's own (10 per hour per client).
        route!(POST "/org/tokens", Admin, org_tokens::create; layer = axum::Extension(org_tokens::MintLimiter::new())),
        route!(DELETE "/org/tokens/{id}", Admin, org_tokens::revoke),
        route!(GET "/workspaces/{id}/external/connection", Workspace, external::connection),
        route!(POST "/workspaces/{id}/external/rotate", Workspace, external::rotate),
        route!(GET "/workspaces/{id}/config", Workspace, config::get),
        route!(PATCH "/workspaces/{id}/config", Workspace, config::patch),
        route!(GET "/workspaces/{id}/transcript", Workspace, transcript::get),
        route!(GET "/canvas/viewport", Public, viewport::get_viewport),
        route!(PUT "/canvas/viewport", CanvasOrBearer, viewport::put_viewport),
        route!(POST "/workspaces/{id}/approvals", Workspace, approvals::create),
        route!(GET "/workspaces/{id}/approvals", Workspace, approvals::list),
        route!(POST "/workspaces/{id}/approvals/{approvalId}/decide", Workspace, approvals::decide),
        route!(GET "/approvals/pending", Admin, approvals::pending),
        route!(GET "/workspaces/{id}/budget", Workspace, budget::get_budget),
        // The original registers the PATCH outside the workspace group: only admins set budgets.
        route!(PATCH "/workspaces/{id}/budget", Admin, budget::patch_budget),
        route!(GET "/workspaces/{id}/metrics", Workspace, budget::metrics),
        route!(GET "/workspaces/{id}/audit", Workspace, audit::list),
        route!(GET "/workspaces/{id}/traces", Workspace, traces::list),
        route!(POST "/workspaces/{id}/memories", Workspace, memories_v1::commit),
        route!(GET "/workspaces/{id}/memories", Workspace, memories_v1::search),
        route!(PATCH "/workspaces/{id}/memories/{memoryId}", Workspace, memories_v1::update),
        route!(DELETE "/workspaces/{id}/memories/{memoryId}", Workspace, memories_v1::delete),
        route!(GET "/workspaces/{id}/v2/namespaces", Workspace, memories_v2::namespaces),
        route!(GET "/workspaces/{id}/v2/memories", Workspace, memories_v2::list),
        route!(DELETE "/workspaces/{id}/v2/memories/{memoryId}", Workspace, memories_v2::delete),
        route!(GET "/admin/memories/export", Admin, crate::memories::admin::export),
        route!(POST "/admin/memories/import", Admin, crate::memories::admin::import),
        route!(GET "/workspaces/{id}/memory", Workspace, kv::list),
        route!(POST "/workspaces/{id}/memory", Workspace, kv::set),
        route!(GET "/workspaces/{id}/memory/{key}", Workspace, kv::get),
        route!(DELETE "/workspaces/{id}/memory/{key}", Workspace, kv::delete),
        route!(GET "/workspaces/{id}/schedules", Workspace, schedules::list),
        route!(POST "/workspaces/{id}/schedules", Workspace, schedules::create),
        // Registered before `{scheduleId}` routes for readers; axum prefers the literal segment.
        route!(GET "/workspaces/{id}/schedules/health", Workspace, schedule_health::workspace),
        route!(PATCH "/workspaces/{id}/schedules/{scheduleId}", Workspace, schedules::update),
        route!(DELETE "/workspaces/{id}/schedules/{scheduleId}", Workspace, schedules::delete),
        route!(POST "/workspaces/{id}/schedules/{scheduleId}/run", Workspace, schedules::run),
        route!(GET "/workspaces/{id}/schedules/{scheduleId}/history", Workspace, schedules::history),
        route!(GET "/admin/schedules/health", Admin, schedule_health::platform),
        route!(GET "/workspaces/{id}/terminal", Workspace, terminal::open),
        route!(GET "/workspaces/{id}/terminal/diagnose", Workspace, terminal::diagnose::diagnose),
        route!(GET "/plugins", Public, plugins::list_registry),
        route!(GET "/plugins/sources", Public, plugins::sources),
        route!(GET "/workspaces/{id}/plugins", Workspace, plugins::list_installed),
        route!(POST "/workspaces/{id}/plugins", Workspace, plugins::install),
        route!(GET "/workspaces/{id}/plugins/available", Workspace, plugins::available),
        route!(GET "/workspaces/{id}/plugins/compatibility", Workspace, plugins::compatibility),
        route!(DELETE "/workspaces/{id}/plugins/{name}", Workspace, plugins::uninstall),
        route!(GET "/workspaces/{id}/plugins/{name}/download", Workspace, plugins::download),
        route!(GET "/orgs/{id}/plugins/allowlist", Admin, plugin_allowlist::get),
        route!(PUT "/orgs/{id}/plugins/allowlist", Admin, plugin_allowlist::put),
    ]
}

/// The table as data, for tests and docs.
pub fn table() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// Builds the application router with every route behind its guard.
pub fn router(state: AppState) -> Router {
    use crate::middleware::{body_deadline, cors, rate_limit, security_headers, tenant_guard};
    use axum::middleware::from_fn_with_state;

    let auth = crate::auth::AuthContext::new(state.clone());
    let mut router = Router::new();
    for Route { spec, handler, .. } in routes() {
        let guarded = match spec.access {
            Access::Public => handler,
            access => handler.route_layer(from_fn_with_state(
                (access, auth.clone()),
                crate::auth::middleware,
            )),
        };
        router = router.route(spec.path, guarded);
    }
    let config = state.config.clone();
    // `RATE_LIMIT=0` turns the limiter off (it would otherwise refuse everything).
    let unlimited = config.dev_mode() || config.rate_limit == 0;
    let limiter = rate_limit::RateLimiter::new(config.rate_limit, unlimited);
    router = with_proxies(router, &config);
    // Like gin: unknown paths and wrong methods are both a plain-text 404.
    //
    // One `ServiceBuilder` of hand-written layers (`middleware::sync`), so the chain is nested
    // concrete services under one boxed route: a `from_fn` clones its inner service into a box
    // and boxes a future per request, and a chain of separate `Router::layer` calls boxed each
    // level, which made every request clone the whole rest of the chain at every level.
    // `Router::layer` wraps each route, so these see the matched route pattern. They run in the
    // order listed: client address and request id → request span → error log (outermost, so it
    // sees every response's final status) → wire format (so every JSON body is labelled alike)
    // → CORS → rate limit → metrics → tenant guard → security headers → body deadline → cache
    // invalidation.
    use crate::middleware::sync::SyncLayer;
    let body_timeout = config
        .request_body_timeout
        .unwrap_or(body_deadline::DEFAULT_REQUEST_BODY_TIMEOUT);
    let middleware = tower::ServiceBuilder::new()
        .layer(SyncLayer(crate::middleware::client_addr::RequestContext(
            config.trusted_proxies.clone(),
        )))
        // The span's body wrapper, back into a `Body` for the layer above.
        .map_response(axum::response::IntoResponse::into_response)
        .layer(crate::middleware::trace::layer())
        .layer(SyncLayer(crate::middleware::error_log::LogErrors))
        .layer(SyncLayer(crate::middleware::wire::WireFormat))
        .layer(SyncLayer(cors::Cors::new(&config.cors_origins)))
        .layer(SyncLayer(limiter))
        .layer(SyncLayer(crate::middleware::metrics::RecordMetrics))
        .layer(SyncLayer(tenant_guard::TenantGuard(config.clone())))
        .layer(SyncLayer(security_headers::SecurityHeaders))
        .layer(SyncLayer(body_deadline::BodyDeadline(body_timeout)))
        .layer(axum::Extension(
            crate::files::batch_permits::BatchPermits::default(),
        ))
        .layer(SyncLayer(crate::workspace_cache::InvalidateAfterWrite(
            state.events.workspace_cache().clone(),
        )));
    router.layer(middleware).with_state(state)
}

/// `/cp/*` to the control plane when `CP_UPSTREAM_URL` is set; unknown paths and wrong methods
/// to the canvas when `CANVAS_PROXY_URL` is, else (like gin) a plain-text 404.
fn with_proxies(mut router: Router<AppState>, config: &crate::ApiConfig) -> Router<AppState> {
    use crate::proxy::{self, Upstream};
    use axum::extract::Request;

    let cp = config
        .cp_upstream_url
        .as_deref()
        .and_then(Upstream::control_plane);
    if let Some(cp) = cp {
        router = router.route(
            "/cp/{*path}",
            axum::routing::any(move |request: Request| proxy::cp(cp.clone(), request)),
        );
    }
    match config
        .canvas_proxy_url
        .as_deref()
        .and_then(Upstream::canvas)
    {
        Some(canvas) => {
            let other = canvas.clone();
            router
                .fallback(move |request: Request| proxy::canvas(canvas.clone(), request))
                .method_not_allowed_fallback(move |request: Request| {
                    proxy::canvas(other.clone(), request)
                })
        }
        None => router
            .fallback(not_found)
            .method_not_allowed_fallback(not_found),
    }
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "404 page not found")
}
