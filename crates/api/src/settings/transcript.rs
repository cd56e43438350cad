//! `GET /workspaces/{id}/transcript`: proxies the agent's own `/transcript`
//! (`handlers/transcript.go:44-123` at 624ef4d0). The agent card's URL is written by the agent,
//! so it is checked before the call (no cloud-metadata or link-local hosts).

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use reqwest::Url;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// The whole call, connect to last byte.
const DEADLINE: Duration = Duration::from_secs(10);
/// Larger transcripts are cut here, as the original did.
const MAX_BODY_BYTES: usize = 1 << 20;
const METADATA_HOSTS: [&str; 3] = ["metadata.google.internal", "metadata.azure.com", "metadata"];

/// The only query parameters forwarded.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default)]
pub struct TranscriptQuery {
    pub since: Option<String>,
    pub limit: Option<String>,
}

/// Why a URL may not be called (logged, never sent).
fn refusal(url: &Url) -> Option<&'static str> {
    if !matches!(url.scheme(), "http" | "https") {
        return Some("unsupported scheme");
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Some("empty host");
    };
    if METADATA_HOSTS.iter().any(|m| host.eq_ignore_ascii_case(m)) {
        return Some("metadata hostname");
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_link_local() => Some("link-local address"),
        Ok(IpAddr::V6(ip)) if (ip.segments()[0] & 0xffc0) == 0xfe80 => Some("link-local address"),
        Ok(IpAddr::V6(ip)) if ip.octets()[0] == 0xfd => Some("IPv6 unique-local address"),
        _ => None,
    }
}

/// The checked `/transcript` URL of the workspace's agent.
async fn target(
    state: &AppState,
    id: uuid::Uuid,
    query: &TranscriptQuery,
) -> Result<Url, ApiError> {
    let url = store::workspace_config::agent_card_url(&state.db, id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::NotFound("workspace not found".to_string()))?;
    if url.is_empty() {
        return Err(ApiError::WithBody {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: serde_json::json!({ "error": "workspace not registered (no URL on file)" }),
        });
    }
    let mut target =
        Url::parse(&url).map_err(|_| ApiError::BadRequest("invalid workspace URL".to_string()))?;
    if let Some(reason) = refusal(&target) {
        tracing::warn!(workspace_id = %id, reason, "transcript: workspace URL refused");
        return Err(ApiError::BadRequest(
            "workspace URL not allowed".to_string(),
        ));
    }
    target.set_path("/transcript");
    target.set_query(None);
    let forwarded = [("since", &query.since), ("limit", &query.limit)];
    for (name, value) in forwarded {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            target.query_pairs_mut().append_pair(name, value);
        }
    }
    Ok(target)
}

/// The process's client for agents' transcripts (built once: it loads the TLS roots). Redirects
/// are not followed, so a checked URL cannot hand the call on to an unchecked one.
fn client() -> Result<&'static reqwest::Client, ApiError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .redirect(reqwest::redirect::Policy::none())
        // Rare calls to many hosts: no idle connections kept (nor tied to a runtime).
        .pool_max_idle_per_host(0)
        .build()
        .map_err(ApiError::internal("failed to build request"))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// `GET /workspaces/{id}/transcript`
#[utoipa::path(get, path = "/workspaces/{id}/transcript", tag = "config",
    params(("id" = String, Path, description = "Workspace id"), TranscriptQuery),
    responses(
        (status = 200, description = "The agent's answer, passed through (at most 1 MiB)", body = Object),
        (status = 400, description = "invalid workspace ID / workspace URL not allowed", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 502, description = "workspace unreachable", body = ErrorBody),
        (status = 503, description = "workspace not registered (no URL on file)", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<TranscriptQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let target = target(&state, id, &query).await?;
    let mut request = client()?.get(target);
    if let Some(auth) = headers.get(AUTHORIZATION) {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let unreachable = |error: reqwest::Error| {
        tracing::warn!(workspace_id = %id, error = %error.without_url(), "transcript: workspace unreachable");
        ApiError::Remote {
            status: StatusCode::BAD_GATEWAY,
            message: "workspace unreachable".to_string(),
            source: None,
        }
    };
    let mut upstream = request.send().await.map_err(unreachable)?;
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = upstream.headers().get(CONTENT_TYPE).cloned();
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match upstream.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(error) => {
                return Err(ApiError::internal("failed to read workspace response")(
                    error,
                ));
            }
        }
    }
    body.truncate(MAX_BODY_BYTES);
    let mut response = Response::builder().status(status);
    if let Some(content_type) = content_type {
        response = response.header(CONTENT_TYPE, content_type);
    }
    response
        .body(Body::from(body))
        .map_err(ApiError::internal("failed to read workspace response"))
}
