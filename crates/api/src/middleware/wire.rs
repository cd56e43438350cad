//! Wire details every response shares with the Go original: JSON bodies are labelled
//! `application/json; charset=utf-8` (gin's type), and the few rejections axum produces itself as
//! plain text (a body over the size limit) get the same `{"error":…}` shape as ours.

use std::ops::ControlFlow;

use axum::Json;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::sync::Middleware;

use crate::error::ErrorBody;

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Labels JSON as UTF-8 and answers an oversized body's 413 in JSON.
#[derive(Debug, Clone, Copy)]
pub struct WireFormat;

impl Middleware for WireFormat {
    type Carry = ();

    fn before(&self, _: &mut Request) -> ControlFlow<Response, ()> {
        ControlFlow::Continue(())
    }

    fn after(&self, (): (), response: Response) -> Response {
        wire_format(response)
    }
}

fn wire_format(mut response: Response) -> Response {
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && content_type
            .as_ref()
            .is_some_and(|t| t.as_bytes().starts_with(b"text/plain"))
    {
        response = (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(ErrorBody {
                code: None,
                error: "request body too large".to_string(),
            }),
        )
            .into_response();
    }
    if response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t == "application/json")
    {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, Bytes, to_bytes};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/json",
                get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .layer(axum::extract::DefaultBodyLimit::max(8))
            .layer(crate::middleware::sync::SyncLayer(WireFormat))
    }

    #[tokio::test]
    async fn json_is_labelled_utf8() {
        let response = app()
            .oneshot(Request::get("/json").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], JSON_UTF8);
    }

    #[tokio::test]
    async fn oversized_body_answers_json_413() {
        let response = app()
            .oneshot(
                Request::post("/echo")
                    .body(Body::from("0123456789abcdef"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[CONTENT_TYPE], JSON_UTF8);
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"error":"request body too large"}"#);
    }
}
