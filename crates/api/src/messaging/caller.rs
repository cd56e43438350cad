//! Who is calling `/a2a` (the original's `handlers/a2a_proxy.go:259-363` at 624ef4d0): nobody in
//! particular (the canvas, an operator), a peer workspace naming itself, or the target itself.

use axum::http::{HeaderMap, StatusCode};
use uuid::Uuid;

use crate::agents::guard::WORKSPACE_ID_HEADER;
use crate::auth::bearer_token;
use crate::error::{ErrorBody, StoreContext};
use crate::{ApiError, AppState};

/// Caller ids of the original's internal callers; no request may claim them.
const RESERVED_PREFIXES: [&str; 4] = ["webhook:", "system:", "test:", "channel:"];

/// The calling workspace, `None` for the canvas class; checked for its token and the hierarchy.
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    target: Uuid,
) -> Result<Option<Uuid>, ApiError> {
    let named = headers
        .get(WORKSPACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let caller = match named {
        Some(named) => {
            if RESERVED_PREFIXES.iter().any(|p| named.starts_with(p)) {
                return Err(forbidden("invalid caller ID"));
            }
            Some(Uuid::parse_str(named).map_err(|_| forbidden("invalid caller ID"))?)
        }
        None => match bearer_token(headers) {
            Some(bearer) => store::tokens::workspace_of_token(&state.db, bearer)
                .await
                .context("lookup failed")?,
            None => None,
        },
    };
    if let Some(caller) = caller.filter(|caller| *caller != target) {
        check_token(state, headers, caller).await?;
    }
    Ok(caller)
}

/// A peer must prove it is who it names, once it has a token (`a2a_proxy_helpers.go:302-325`).
async fn check_token(state: &AppState, headers: &HeaderMap, caller: Uuid) -> Result<(), ApiError> {
    let has_token = store::tokens::workspace_has_live_token(&state.db, caller)
        .await
        .context("lookup failed")?;
    if !has_token {
        return Ok(());
    }
    let Some(bearer) = bearer_token(headers) else {
        return Err(ApiError::Unauthorized("missing caller auth token".into()));
    };
    let owner = store::tokens::workspace_of_token(&state.db, bearer)
        .await
        .context("lookup failed")?;
    if owner != Some(caller) {
        return Err(ApiError::Unauthorized("invalid caller auth token".into()));
    }
    Ok(())
}

/// The hierarchy rule between a peer and its target (`internal/registry/access.go:81-130`).
pub async fn check_hierarchy(
    state: &AppState,
    caller: Option<Uuid>,
    target: Uuid,
) -> Result<(), ApiError> {
    let Some(caller) = caller.filter(|caller| *caller != target) else {
        return Ok(());
    };
    let allowed = store::registry::can_communicate(&state.db, caller, target)
        .await
        .context("lookup failed")?;
    if allowed {
        Ok(())
    } else {
        Err(forbidden(
            "access denied: workspaces cannot communicate per hierarchy rules",
        ))
    }
}

fn forbidden(message: &str) -> ApiError {
    let body = ErrorBody {
        code: None,
        error: message.to_string(),
    };
    ApiError::with_body(StatusCode::FORBIDDEN, &body)
}
