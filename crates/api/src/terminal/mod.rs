//! `GET /workspaces/{id}/terminal` (a shell on the workspace's instance over a WebSocket) and
//! `GET /workspaces/{id}/terminal/diagnose` (the setup steps of that shell, timed).
//!
//! The original (`handlers/terminal.go` at 624ef4d0) ran `ssh-keygen`, two `aws` CLIs and an
//! `ssh` client under a local PTY for every session; here a session is one channel on the
//! instance's pooled, host-key-pinned connection (`eic_pool::EicPool::open_shell`).

pub mod diagnose;
mod session;

pub use diagnose::{Diagnosis, DiagnosisStep};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::agents::guard::WORKSPACE_ID_HEADER;
use crate::auth::{OrgCaller, bearer_token};
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiConfig, ApiError, AppState};

/// The 409 of a workspace with no instance: the terminal never opens a shell on the server.
pub const NO_INSTANCE: &str = "workspace has no instance: the terminal needs one";

/// `GET /workspaces/{id}/terminal`: checks everything before the upgrade (so refusals are plain
/// HTTP answers), then runs the session (see the `session` module).
#[utoipa::path(get, path = "/workspaces/{id}/terminal", tag = "terminal",
    params(("id" = Uuid, Path)), responses(
    (status = 101, description = "The terminal: keystrokes in text frames, output in binary frames; \
        a text frame `{\"type\":\"resize\",\"cols\":…,\"rows\":…}` resizes the PTY"),
    (status = 400, description = "Invalid workspace id, or not a WebSocket upgrade", body = ErrorBody),
    (status = 401, description = "Missing or invalid workspace auth, or a token not of the claimed workspace", body = ErrorBody),
    (status = 403, description = "Origin not allowed, or the claimed caller may not reach this workspace", body = ErrorBody),
    (status = 404, description = "Workspace not found", body = ErrorBody),
    (status = 409, description = "The workspace has no instance, or EIC is not configured", body = ErrorBody),
    (status = 426, description = "Upgrade required")))]
pub async fn open(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    headers: HeaderMap,
    org: Option<Extension<OrgCaller>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    check_caller(&state, &headers, id, org.is_some(), "access").await?;
    let instance_id = instance_of(&state, id).await?;
    if !origin_allowed(&state.config, &headers) {
        return Err(forbidden("websocket origin not allowed"));
    }
    let pool = state.eic.clone().ok_or_else(|| {
        ApiError::Conflict(
            "workspace instance is unavailable: EIC is not configured on this server".into(),
        )
    })?;
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let shutdown = state.events.shutdown().clone();
    Ok(upgrade.on_upgrade(move |socket| session::run(socket, pool, instance_id, shutdown)))
}

/// The rule for a caller naming itself in `X-Workspace-ID` (`handlers/terminal.go:85-106` at
/// 624ef4d0): a bearer must be the caller's own token (unless WorkspaceAuth accepted an org
/// token), and the hierarchy must let the caller reach the workspace. No header: no rule.
async fn check_caller(
    state: &AppState,
    headers: &HeaderMap,
    target: Uuid,
    org_token: bool,
    action: &str,
) -> ApiResult<()> {
    let Some(named) = headers
        .get(WORKSPACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && *v != target.to_string())
    else {
        return Ok(());
    };
    let caller = Uuid::parse_str(named).ok();
    if let Some(bearer) = bearer_token(headers)
        && !org_token
    {
        let owner = store::tokens::workspace_of_token(&state.db, bearer)
            .await
            .context("token lookup failed")?;
        if owner.is_none() || owner != caller {
            return Err(ApiError::Unauthorized(
                "invalid token for claimed workspace".into(),
            ));
        }
    }
    // An id that is not one cannot be in the hierarchy (the original's lookup failed: refused).
    let allowed = match caller {
        Some(caller) => store::registry::can_communicate(&state.db, caller, target)
            .await
            .unwrap_or(false),
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(&format!(
            "not authorized to {action} this workspace's terminal"
        )))
    }
}

/// The workspace's instance id; 404 for an unknown workspace, 409 when it has no instance.
async fn instance_of(state: &AppState, id: Uuid) -> ApiResult<String> {
    let target = store::file_targets::lookup(&state.db, id)
        .await
        .context("query failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    if target.instance_id.is_empty() {
        return Err(ApiError::Conflict(NO_INSTANCE.into()));
    }
    Ok(target.instance_id)
}

/// The upgrade's origin check (`handlers/terminal.go:30-48` at 624ef4d0): no `Origin`, a
/// localhost origin, or exactly one of `CORS_ORIGINS`.
fn origin_allowed(config: &ApiConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin.is_empty()
        || origin.starts_with("http://localhost:")
        || origin.starts_with("https://localhost:")
        || config
            .cors_origins
            .iter()
            .any(|allowed| allowed.trim() == origin)
}

fn forbidden(message: &str) -> ApiError {
    let body = ErrorBody {
        code: None,
        error: message.to_string(),
    };
    ApiError::with_body(StatusCode::FORBIDDEN, &body)
}
