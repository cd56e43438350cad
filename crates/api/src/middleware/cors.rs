//! CORS exactly as the original's gin-contrib/cors setup: an `Origin` outside
//! `CORS_ORIGINS` gets 403 with an empty body; a preflight from an allowed origin gets 204 and
//! nothing later runs; same-origin requests (`Origin == http(s)://<Host>`) pass untouched.

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::sync::Middleware;

use crate::auth::origin_is_host;

const DEFAULT_ORIGINS: [&str; 2] = ["http://localhost:3000", "http://localhost:3001"];
const ALLOW_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,OPTIONS";
const ALLOW_HEADERS: &str = "Origin,Content-Type,X-Workspace-Id,Authorization";
const PREFLIGHT_VARY: [&str; 3] = [
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
];

/// The allowed origins (`CORS_ORIGINS`, or the original's localhost defaults when empty).
#[derive(Debug, Clone)]
pub struct Cors {
    allowed: Arc<Vec<String>>,
}

impl Cors {
    pub fn new(origins: &[String]) -> Self {
        let mut allowed: Vec<String> = origins
            .iter()
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if allowed.is_empty() {
            allowed = DEFAULT_ORIGINS.iter().map(|o| o.to_string()).collect();
        }
        Cors {
            allowed: Arc::new(allowed),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.allowed.iter().any(|allowed| allowed == origin)
    }
}

impl Middleware for Cors {
    /// The allowed origin of a cross-origin request that goes on, echoed in the response.
    type Carry = Option<HeaderValue>;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Option<HeaderValue>> {
        let Some(origin) = request.headers().get(ORIGIN).cloned() else {
            return ControlFlow::Continue(None); // not a CORS request
        };
        if origin_is_host(request.headers()) {
            return ControlFlow::Continue(None);
        }
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return ControlFlow::Break(status_only(StatusCode::FORBIDDEN));
        }
        if request.method() == Method::OPTIONS {
            let mut response = status_only(StatusCode::NO_CONTENT);
            let headers = response.headers_mut();
            allow_origin(headers, origin);
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            for vary in PREFLIGHT_VARY {
                headers.append(VARY, HeaderValue::from_static(vary));
            }
            return ControlFlow::Break(response);
        }
        ControlFlow::Continue(Some(origin))
    }

    fn after(&self, origin: Option<HeaderValue>, mut response: Response) -> Response {
        if let Some(origin) = origin {
            let headers = response.headers_mut();
            allow_origin(headers, origin);
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        response
    }
}

/// Names `origin` as allowed, with credentials (cookies), on a preflight or an answer.
fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}

fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
