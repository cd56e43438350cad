//! Request spans: one `tracing` span per request, named by the matched route pattern.

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, DefaultOnResponse, MakeSpan, TraceLayer,
};
use tracing::{Level, Span};

/// Builds the span of a request: method, route pattern (`unmatched` when no route matched),
/// path, request id and client address (so every line logged within carries them). The query string is left out: it may carry tokens.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpan;

impl MakeSpan<Body> for RouteSpan {
    fn make_span(&mut self, request: &Request<Body>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let request_id = request
            .headers()
            .get(super::error_log::REQUEST_ID_HEADER)
            .and_then(|id| id.to_str().ok())
            .unwrap_or("-");
        let client = request
            .extensions()
            .get::<super::client_addr::ClientAddr>()
            .map_or_else(|| "-".to_owned(), |client| client.0.to_string());
        tracing::info_span!("http", method = %request.method(), route, path = %request.uri().path(), request_id, client)
    }
}

/// The tower-http trace layer with [`RouteSpan`] and one `debug` event per response. Failures are
/// not logged here: [`super::error_log`] logs each 5xx once, with its cause.
pub fn layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RouteSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
> {
    TraceLayer::new_for_http()
        .make_span_with(RouteSpan)
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
        .on_failure(())
}
