//! `GET /workspaces/{id}/traces`: the workspace's recent Langfuse traces, proxied
//! (`handlers/traces.go` at 624ef4d0). Without Langfuse configured, or when it does not answer
//! in time, the answer is `[]`: the canvas shows an empty list rather than an error.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// The largest Langfuse answer relayed; a larger one counts as no answer.
const MAX_TRACES_BYTES: usize = 8 * 1024 * 1024;

/// `LANGFUSE_HOST`, `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` and the client that calls it
/// with `LANGFUSE_TIMEOUT` as the budget of a whole call (connect, answer and body).
#[derive(Clone)]
pub struct LangfuseConfig {
    host: String,
    public_key: String,
    secret_key: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for LangfuseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LangfuseConfig")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl LangfuseConfig {
    /// `None` (traces off) unless all three values are non-empty, as in the original.
    pub fn new(host: &str, public_key: &str, secret_key: &str, timeout: Duration) -> Option<Self> {
        if host.is_empty() || public_key.is_empty() || secret_key.is_empty() {
            return None;
        }
        let client = match reqwest::Client::builder().timeout(timeout).build() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = ?error, "traces: cannot build the Langfuse client; off");
                return None;
            }
        };
        Some(LangfuseConfig {
            host: host.to_string(),
            public_key: public_key.to_string(),
            secret_key: secret_key.to_string(),
            client,
        })
    }
}

/// The newest 20 traces tagged with the workspace's id: Langfuse's status and body as they are.
#[utoipa::path(get, path = "/workspaces/{id}/traces", tag = "traces",
    params(("id" = uuid::Uuid, Path)), responses(
    (status = 200, description = "Langfuse's answer, or [] without Langfuse",
     body = Vec<Object>),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 500, description = "LANGFUSE_HOST is not a URL", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, WorkspaceId(id): WorkspaceId) -> Response {
    let Some(langfuse) = state.config.langfuse.as_ref() else {
        return no_traces();
    };
    // The host is used verbatim, as the original does (a trailing `/` gives `//api`).
    let url = format!(
        "{}/api/public/traces?limit=20&orderBy=timestamp&orderDir=desc&tags={id}",
        langfuse.host
    );
    let url = match reqwest::Url::parse(&url) {
        Ok(url) => url,
        Err(error) => return ApiError::internal("failed to create request")(error).into_response(),
    };
    let request = langfuse
        .client
        .get(url)
        .basic_auth(&langfuse.public_key, Some(&langfuse.secret_key));
    match fetch(request).await {
        Ok((status, body)) => relay(status, body),
        Err(error) => {
            tracing::warn!(error = %error, "traces: Langfuse did not answer; no traces");
            no_traces()
        }
    }
}

fn no_traces() -> Response {
    Json(Vec::<Value>::new()).into_response()
}

/// Sends the request and reads the body, at most [`MAX_TRACES_BYTES`]; the client's timeout
/// bounds the whole exchange.
async fn fetch(request: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), String> {
    let mut response = request.send().await.map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(response.status().as_u16()).map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_TRACES_BYTES {
            return Err(format!("answer larger than {MAX_TRACES_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

fn relay(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
