//! The route table: every route of the server with the access rule that guards it.
//!
//! A route cannot be added without choosing its [`Access`]; `tests/` walks [`table`] to check
//! that every non-public route refuses anonymous callers and other workspaces' tokens.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, get};

use crate::AppState;
use crate::handlers::ops;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (still subject to CORS, rate limit and the tenant guard).
    Public,
    /// AdminAuth (api-contract §5.2).
    Admin,
    /// WorkspaceAuth on the `{id}` of the path (§5.3).
    Workspace,
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

fn route(method: Method, path: &'static str, access: Access, handler: MethodRouter<AppState>) -> Route {
    Route { spec: RouteSpec { method, path, access }, handler }
}

fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        route(Method::GET, "/health", Public, get(ops::health)),
    ]
}

/// The table as data, for tests and docs.
pub fn table() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// Builds the application router with every route behind its guard.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for Route { spec, handler } in routes() {
        let _ = spec.access;
        router = router.route(spec.path, handler);
    }
    router.with_state(state)
}
