//! The agents' guards (the original's `requireWorkspaceToken` and `validateDiscoveryCaller`).
//!
//! Both are bootstrap-aware: a workspace with no live token yet is let through (its first
//! `/registry/register` mints one); once it has a token, its own bearer is required.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::auth::{AuthContext, bearer_token};
use crate::error::StoreContext;
use crate::{ApiError, AppState};

/// The header naming the calling workspace on discovery and the live stream.
pub const WORKSPACE_ID_HEADER: &str = "x-workspace-id";

/// How [`require_agent_token`] let a caller through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentCaller {
    /// The workspace had no live token yet: nothing to present.
    Bootstrap,
    /// The caller presented the workspace's own token.
    Token,
}

/// [`crate::Access::AgentBody`]: checked by the registry handlers once the body has named the
/// workspace. Without a live token the workspace is let through; with one, its own bearer is
/// required.
pub async fn require_agent_token(
    state: &AppState,
    headers: &HeaderMap,
    workspace_id: Uuid,
) -> Result<AgentCaller, ApiError> {
    let has_token = store::tokens::workspace_has_live_token(&state.db, workspace_id)
        .await
        .context("auth check failed")?;
    if !has_token {
        return Ok(AgentCaller::Bootstrap);
    }
    let Some(bearer) = bearer_token(headers) else {
        return Err(missing_token());
    };
    let owner = store::tokens::workspace_of_token(&state.db, bearer)
        .await
        .context("auth check failed")?;
    if owner == Some(workspace_id) {
        Ok(AgentCaller::Token)
    } else {
        Err(invalid_token())
    }
}

/// The 401 of a caller that presents no token where one is required.
pub fn missing_token() -> ApiError {
    ApiError::Unauthorized("missing workspace auth token".to_string())
}

/// The 401 of a caller whose token is not the workspace's.
pub fn invalid_token() -> ApiError {
    ApiError::Unauthorized("invalid workspace auth token".to_string())
}

/// [`crate::Access::AgentHeader`] (discover): the caller named by the required `X-Workspace-ID`.
pub async fn caller_from_header(ctx: &AuthContext, headers: &HeaderMap) -> Result<(), Response> {
    let named = headers
        .get(WORKSPACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let Some(named) = named else {
        return Err(bad_request("X-Workspace-ID header is required"));
    };
    discovery_caller(ctx, headers, named).await
}

/// [`crate::Access::AgentPath`] (peers): the caller is the `{id}` of the path.
pub async fn caller_from_path(
    ctx: &AuthContext,
    headers: &HeaderMap,
    path_id: Option<&str>,
) -> Result<(), Response> {
    discovery_caller(ctx, headers, path_id.unwrap_or_default()).await
}

/// Discovery's check: like [`require_agent_token`], and dev mode or a verified canvas session
/// also pass, as in the original.
async fn discovery_caller(
    ctx: &AuthContext,
    headers: &HeaderMap,
    caller: &str,
) -> Result<(), Response> {
    let Ok(caller) = Uuid::parse_str(caller) else {
        return Err(bad_request("invalid workspace ID"));
    };
    let state = &ctx.state;
    let has_token = store::tokens::workspace_has_live_token(&state.db, caller)
        .await
        .context("auth check failed")
        .map_err(IntoResponse::into_response)?;
    if !has_token || state.config.dev_mode() {
        return Ok(());
    }
    if let Some(cookie) = headers.get(COOKIE).and_then(|v| v.to_str().ok())
        && ctx.sessions.verify(cookie).await
    {
        return Ok(());
    }
    require_agent_token(state, headers, caller)
        .await
        .map(|_| ())
        .map_err(IntoResponse::into_response)
}

fn bad_request(message: &str) -> Response {
    ApiError::BadRequest(message.to_string()).into_response()
}
