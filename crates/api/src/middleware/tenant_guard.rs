//! Tenant guard (the original's `middleware/tenant_guard.go`): with `MOLECULE_ORG_ID` set, a
//! request must carry this org's id (`X-Molecule-Org-Id`, or `state=` of `Fly-Replay-Src`) or be a
//! same-origin canvas request; otherwise 404 with an empty body, so other orgs cannot probe for
//! this tenant.

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::sync::Middleware;

use crate::ApiConfig;
use crate::auth::same_origin_canvas;

/// Exact paths that stay reachable without the org header (probes and agents' boot signals).
const ALLOWED_PATHS: [&str; 6] = [
    "/health",
    "/ready",
    "/buildinfo",
    "/metrics",
    "/registry/register",
    "/registry/heartbeat",
];

/// Refuses with 404 what does not name this tenant (see the module docs).
#[derive(Debug, Clone)]
pub struct TenantGuard(pub Arc<ApiConfig>);

impl Middleware for TenantGuard {
    type Carry = ();

    fn before(&self, request: &mut Request) -> ControlFlow<Response, ()> {
        if passes(&self.0, request) {
            return ControlFlow::Continue(());
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_FOUND;
        ControlFlow::Break(response)
    }

    fn after(&self, (): (), response: Response) -> Response {
        response
    }
}

fn passes(config: &ApiConfig, request: &Request) -> bool {
    let Some(org_id) = config
        .org_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    else {
        return true;
    };
    let path = request.uri().path();
    let headers = request.headers();
    ALLOWED_PATHS.contains(&path)
        || path.starts_with("/cp/")
        || headers
            .get("x-molecule-org-id")
            .is_some_and(|v| v.as_bytes() == org_id.as_bytes())
        || headers
            .get("fly-replay-src")
            .and_then(|v| v.to_str().ok())
            .and_then(org_id_from_replay_src)
            .is_some_and(|state| state == org_id)
        || same_origin_canvas(config, headers)
}

/// The `state=` segment of `Fly-Replay-Src` (`instance=…;region=…;state=<org id>`).
fn org_id_from_replay_src(header: &str) -> Option<&str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|segment| segment.strip_prefix("state="))
}

#[cfg(test)]
mod tests {
    use super::org_id_from_replay_src;

    #[test]
    fn replay_src_state_is_extracted() {
        assert_eq!(
            org_id_from_replay_src("instance=1;region=ord; state=abc"),
            Some("abc")
        );
        assert_eq!(org_id_from_replay_src("instance=1"), None);
    }
}
