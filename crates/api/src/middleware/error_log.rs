//! One log line per server-side failure, with its cause. [`crate::ApiError`] keeps the cause out
//! of the response body and puts its source chain into the response extensions
//! ([`LoggedError`]); this middleware, the outermost, writes it to the log once: `error` for a
//! fault of ours or of the database (500, 503), `warn` for a remote host's (502, 504). Client
//! errors (4xx) are the client's business and stay at `debug`.

use std::net::IpAddr;
use std::ops::ControlFlow;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::sync::Middleware;

use crate::error::LoggedError;

/// The header a proxy in front may set to correlate its log with ours.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// A request id longer than this from the client is replaced (it only labels log lines).
const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one request in the log: the proxy's `X-Request-Id` when it sent a printable one,
/// else a fresh UUID. Put into the request extensions for inner layers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    pub(crate) fn from_header(value: Option<&HeaderValue>) -> RequestId {
        let given = value
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
            .filter(|id| id.chars().all(|c| c.is_ascii_graphic()));
        match given {
            Some(id) => RequestId(id.to_string()),
            None => RequestId(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// Logs each 5xx once, with method, route pattern, status, request id and the cause's full
/// source chain (`-` when the response carries none, e.g. a panic turned into a 500), and
/// the client address. The request id comes from [`super::client_addr::RequestContext`].
#[derive(Debug, Clone, Copy)]
pub struct LogErrors;

/// What a log line names of the request.
#[derive(Debug)]
pub struct Seen {
    request_id: RequestId,
    client: IpAddr,
    method: Method,
    route: Option<MatchedPath>,
}

impl Middleware for LogErrors {
    type Carry = Seen;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Seen> {
        ControlFlow::Continue(Seen {
            request_id: request
                .extensions()
                .get::<RequestId>()
                .cloned()
                .unwrap_or_else(|| {
                    RequestId::from_header(request.headers().get(REQUEST_ID_HEADER))
                }),
            client: super::client_addr::ClientAddr::of(request),
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
        })
    }

    fn after(&self, seen: Seen, response: Response) -> Response {
        if response.status().is_client_error() || response.status().is_server_error() {
            log(&seen, &response);
        }
        response
    }
}

fn log(seen: &Seen, response: &Response) {
    let status = response.status();
    let cause = response
        .extensions()
        .get::<LoggedError>()
        .map_or("-", |logged| logged.0.as_str());
    let client = seen.client.to_string();
    let client = client.as_str();
    let method = &seen.method;
    let route = seen.route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let request_id = seen.request_id.0.as_str();
    match status {
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => tracing::warn!(
            %method, route, status = status.as_u16(), request_id, client, cause, "remote host failed the request"
        ),
        status if status.is_server_error() => tracing::error!(
            %method, route, status = status.as_u16(), request_id, client, cause, "request failed"
        ),
        status if status.is_client_error() => tracing::debug!(
            %method, route, status = status.as_u16(), request_id, client, cause, "request refused"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printable_request_id_from_the_proxy_is_kept() {
        let header = HeaderValue::from_static("edge-42");
        assert_eq!(RequestId::from_header(Some(&header)).0, "edge-42");
    }

    #[test]
    fn a_missing_or_unprintable_request_id_is_replaced_by_a_uuid() {
        for header in [None, Some(HeaderValue::from_static("has space"))] {
            let id = RequestId::from_header(header.as_ref()).0;
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        let long = HeaderValue::from_str(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).unwrap();
        assert_ne!(
            RequestId::from_header(Some(&long)).0.len(),
            MAX_REQUEST_ID_LEN + 1
        );
    }
}
