//! The route table: every route of the server with the access rule that guards it.
//!
//! A route cannot be added without choosing its [`Access`]; `tests/` walks [`table`] to check
//! that every non-public route refuses anonymous callers and other workspaces' tokens.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::AppState;
use crate::handlers::ops;
use crate::handlers::{activity, events, registry};
use crate::handlers::{admin, model, workspaces};
use crate::handlers::{files, templates};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (still subject to CORS, rate limit and the tenant guard).
    Public,
    /// AdminAuth (api-contract §5.2).
    Admin,
    /// WorkspaceAuth on the `{id}` of the path (§5.3).
    Workspace,
    /// WorkspaceAuth, then only the workspace's own token once it has one (`/state`, §3.8).
    WorkspaceSelf,
    /// The test-token bootstrap's own gate: `MOLECULE_ENV`, `MOLECULE_ENABLE_TEST_TOKENS`,
    /// `ADMIN_TOKEN` (§5.5).
    TestToken,
    /// The agent's own bearer for the workspace its JSON body names (`/registry/register`,
    /// `heartbeat`, `update-card`); a workspace without a live token yet passes. Checked by the
    /// handler once the body is parsed (`auth::agent::require_agent_token`).
    AgentBody,
    /// Discovery: the bearer of the workspace named by the required `X-Workspace-ID` header;
    /// dev mode, a canvas session or a workspace without a live token pass.
    AgentHeader,
    /// Discovery of one's own peers: like `AgentHeader` for the `{id}` of the path.
    AgentPath,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

struct Route {
    spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        spec: RouteSpec {
            method,
            path,
            access,
        },
        handler,
    }
}

#[rustfmt::skip]
fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        route(Method::GET, "/health", Public, get(ops::health)),
        route(Method::GET, "/ready", Public, get(ops::ready)),
        route(Method::GET, "/buildinfo", Public, get(ops::buildinfo)),
        route(Method::GET, "/metrics", Public, get(ops::metrics)),
        route(Method::GET, "/openapi.json", Public, get(crate::openapi::serve)),
        route(Method::GET, "/admin/liveness", Admin, get(admin::liveness)),
        route(Method::GET, "/workspaces", Admin, get(workspaces::list)),
        route(Method::POST, "/workspaces", Admin, post(workspaces::create)),
        route(Method::GET, "/workspaces/{id}", Public, get(workspaces::get)),
        route(Method::PATCH, "/workspaces/{id}", Workspace, patch(workspaces::update)),
        route(Method::DELETE, "/workspaces/{id}", Admin, delete(workspaces::delete)),
        route(Method::GET, "/workspaces/{id}/state", WorkspaceSelf, get(workspaces::state)),
        route(Method::GET, "/workspaces/{id}/model", Workspace, get(model::get_model)),
        route(Method::PUT, "/workspaces/{id}/model", Workspace, put(model::put_model)),
        route(Method::GET, "/workspaces/{id}/provider", Workspace, get(model::get_provider)),
        route(Method::PUT, "/workspaces/{id}/provider", Workspace, put(model::put_provider)),
        route(Method::GET, "/admin/workspaces/{id}/test-token", TestToken, get(admin::test_token)),
        route(Method::PUT, "/admin/workspaces/{id}/instance", Admin, put(admin::set_instance)),
        route(Method::POST, "/registry/register", AgentBody, post(registry::register)),
        route(Method::POST, "/registry/heartbeat", AgentBody, post(registry::heartbeat)),
        route(Method::POST, "/registry/update-card", AgentBody, post(registry::update_card)),
        route(Method::GET, "/registry/discover/{id}", AgentHeader, get(registry::discover)),
        route(Method::GET, "/registry/{id}/peers", AgentPath, get(registry::peers)),
        route(Method::POST, "/registry/check-access", Public, post(registry::check_access)),
        route(Method::GET, "/events", Admin, get(events::list)),
        route(Method::GET, "/events/{workspaceId}", Admin, get(events::list_for_workspace)),
        // The canvas subscribes without credentials (as in the original); agents naming
        // themselves with `X-Workspace-ID` are checked by the handler before the upgrade.
        route(Method::GET, "/ws", Public, get(events::socket)),
        route(Method::POST, "/workspaces/{id}/activity", Workspace, post(activity::report)),
        route(Method::GET, "/workspaces/{id}/activity", Workspace, get(activity::list)),
        route(Method::GET, "/templates", Admin, get(templates::list)),
        route(Method::POST, "/templates/import", Admin, post(templates::import)),
        route(Method::GET, "/workspaces/{id}/files", Workspace, get(files::list)),
        route(Method::PUT, "/workspaces/{id}/files", Workspace, put(files::replace)),
        route(Method::GET, "/workspaces/{id}/files/{*path}", Workspace, get(files::read)),
        route(Method::PUT, "/workspaces/{id}/files/{*path}", Workspace, put(files::write)),
        route(Method::DELETE, "/workspaces/{id}/files/{*path}", Workspace, delete(files::delete)),
    ]
}

/// The table as data, for tests and docs.
pub fn table() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// Builds the application router with every route behind its guard.
pub fn router(state: AppState) -> Router {
    use crate::middleware::{cors, rate_limit, security_headers, tenant_guard};
    use axum::middleware::{from_fn, from_fn_with_state};

    let auth = crate::auth::AuthContext::new(state.clone());
    let mut router = Router::new();
    for Route { spec, handler } in routes() {
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
    let limiter = rate_limit::RateLimiter::new(config.rate_limit, config.dev_mode());
    // Like gin: unknown paths and wrong methods are both a plain-text 404.
    router
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        // `Router::layer` wraps each route, so these see the matched route pattern. The last
        // layer added runs first: request span → error log (outermost, so it sees every
        // response's final status) → wire format (so every JSON body is labelled alike) → CORS →
        // rate limit → metrics → tenant guard → security headers → cache invalidation.
        .layer(from_fn_with_state(
            state.events.workspace_cache().clone(),
            crate::workspace_cache::invalidate_after_write,
        ))
        .layer(from_fn(security_headers::security_headers))
        .layer(from_fn_with_state(
            config.clone(),
            tenant_guard::tenant_guard,
        ))
        .layer(from_fn(crate::middleware::metrics::record))
        .layer(from_fn_with_state(limiter, rate_limit::rate_limit))
        .layer(from_fn_with_state(
            cors::Cors::new(&config.cors_origins),
            cors::cors,
        ))
        .layer(from_fn(crate::middleware::wire::wire_format))
        .layer(from_fn(crate::middleware::error_log::log_errors))
        .layer(crate::middleware::trace::layer())
        .with_state(state)
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "404 page not found")
}
