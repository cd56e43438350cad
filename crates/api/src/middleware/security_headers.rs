//! Security headers on every response that passed CORS (the original's
//! `middleware/securityheaders.go`). A handler may set its own value for any of them; ours fill
//! in only what is missing.

use std::ops::ControlFlow;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::Response;

use super::sync::Middleware;

/// Paths served as JSON by this server; everything else (the canvas) gets the permissive CSP.
const API_PREFIXES: [&str; 16] = [
    "/workspaces",
    "/registry",
    "/health",
    "/admin",
    "/metrics",
    "/settings",
    "/bundles",
    "/org",
    "/orgs",
    "/templates",
    "/plugins",
    "/webhooks",
    "/channels",
    "/ws",
    "/events",
    "/approvals",
];
const API_CSP: &str = "default-src 'self'";
const CANVAS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; \
     font-src 'self' data:";

pub fn is_api_path(path: &str) -> bool {
    API_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Fills in the security headers a response lacks.
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders;

impl Middleware for SecurityHeaders {
    /// The content security policy of the request's path.
    type Carry = &'static str;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, &'static str> {
        ControlFlow::Continue(if is_api_path(request.uri().path()) {
            API_CSP
        } else {
            CANVAS_CSP
        })
    }

    fn after(&self, csp: &'static str, mut response: Response) -> Response {
        fill_in(response.headers_mut(), csp);
        response
    }
}

fn fill_in(headers: &mut axum::http::HeaderMap, csp: &'static str) {
    let defaults = [
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (
            STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (CONTENT_SECURITY_POLICY, csp),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    headers
        .entry("permissions-policy")
        .or_insert(HeaderValue::from_static(
            "camera=(), microphone=(), geolocation=()",
        ));
}

#[cfg(test)]
mod tests {
    use super::is_api_path;

    #[test]
    fn api_paths_match_whole_segments() {
        assert!(is_api_path("/health"));
        assert!(is_api_path("/admin/liveness"));
        assert!(is_api_path("/workspaces/x/files"));
        assert!(!is_api_path("/healthz"));
        assert!(!is_api_path("/buildinfo"));
    }
}
