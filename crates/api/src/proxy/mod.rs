//! The tenant's reverse proxies (`router/cp_proxy.go`, `router/canvas_proxy.go` at 624ef4d0):
//! `/cp/*` to the control plane (`CP_UPSTREAM_URL`) behind a path allow-list checked on the
//! NORMALISED path (the original checked the raw one, so `/cp/orgs/../admin` passed), and every
//! unmatched request to the canvas (`CANVAS_PROXY_URL`) without the caller's `Authorization` and
//! `Cookie`. Answers stream back; an unreachable upstream is a 502 with a JSON message.

mod path;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

pub use path::{cp_allowed, normalise};

/// Request bodies forwarded at most (the control plane's and canvas's requests are small forms).
const REQUEST_BODY_CAP: usize = 16 * 1024 * 1024;
/// A connection to an upstream must open within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while reading an upstream's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Hop-by-hop headers, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// One upstream: its origin and what is removed from the caller's headers.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    origin: String,
    strip_credentials: bool,
    unavailable: &'static str,
}

impl Upstream {
    /// The control plane: credentials forwarded.
    pub fn control_plane(url: &str) -> Option<Self> {
        Self::new(url, false, "control plane unavailable")
    }

    /// The canvas: `Authorization` and `Cookie` stripped.
    pub fn canvas(url: &str) -> Option<Self> {
        Self::new(url, true, "canvas unavailable")
    }

    /// `None` when `url` is not an absolute http(s) URL (logged).
    fn new(url: &str, strip_credentials: bool, unavailable: &'static str) -> Option<Self> {
        let parsed = match reqwest::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
                parsed
            }
            _ => {
                tracing::error!(%url, "proxy upstream is not an http(s) URL: proxy off");
                return None;
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        // Only scheme, host and port are used: the request's own path is kept.
        let origin = parsed.origin().ascii_serialization();
        Some(Self {
            client,
            origin,
            strip_credentials,
            unavailable,
        })
    }

    /// Forwards `request` to `path_and_query` on the upstream and streams the answer back.
    pub async fn forward(&self, request: Request, path_and_query: &str) -> Response {
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, REQUEST_BODY_CAP).await {
            Ok(body) => body,
            Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        };
        let url = format!("{}{path_and_query}", self.origin);
        let outgoing = self
            .client
            .request(parts.method, url)
            .headers(self.request_headers(&parts.headers))
            .body(body);
        match outgoing.send().await {
            Ok(answer) => stream_back(answer),
            Err(error) => {
                tracing::warn!(%error, upstream = %self.origin, "proxy upstream unreachable");
                let body = crate::error::ErrorBody {
                    code: None,
                    error: self.unavailable.to_string(),
                };
                (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
            }
        }
    }

    fn request_headers(&self, incoming: &HeaderMap) -> HeaderMap {
        let mut headers = incoming.clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        if self.strip_credentials {
            headers.remove(header::AUTHORIZATION);
            headers.remove(header::COOKIE);
        }
        headers
    }
}

/// The upstream's status, headers and body (streamed, chunk by chunk).
fn stream_back(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = answer.headers().clone();
    strip_hop_by_hop(&mut headers);
    let chunks = stream::unfold(answer, |mut answer| async move {
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, reqwest::Error>(chunk), answer)),
            Ok(None) => None,
            Err(error) => Some((Err(error), answer)),
        }
    });
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `/cp/*`: the allow-listed, normalised path to the control plane, else the original's empty 404.
pub async fn cp(upstream: Upstream, request: Request) -> Response {
    let Some(path) = normalise(request.uri().path()).filter(|p| cp_allowed(p)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let target = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    upstream.forward(request, &target).await
}

/// Unmatched paths: the canvas, path and query as received.
pub async fn canvas(upstream: Upstream, request: Request) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    upstream.forward(request, &target).await
}
