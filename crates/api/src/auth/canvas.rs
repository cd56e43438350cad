//! CanvasOrBearer (`middleware/wsauth_middleware.go:281-355` at 624ef4d0), the guard of
//! `PUT /canvas/viewport`: the browser canvas passes by its `Origin`, scripts by a bearer.
//!
//! Unlike AdminAuth it fails open when the token count cannot be read (a viewport is cosmetic),
//! refuses org tokens, and has no session-cookie or dev-mode tier.

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use axum::response::Response;

use super::{AuthContext, bearer_token, header, is_admin_token, same_origin_canvas, unauthorized};

/// The canvas's own origins, allowed whatever `CORS_ORIGINS` adds.
const CANVAS_ORIGINS: [&str; 2] = ["http://localhost:3000", "http://localhost:3001"];

/// Passes a request with a valid bearer (`ADMIN_TOKEN` or any live workspace token), or without
/// a bearer from an allowed origin or the same-origin canvas; passes everything while no
/// workspace token exists yet.
pub async fn canvas_or_bearer(ctx: &AuthContext, headers: &HeaderMap) -> Result<(), Response> {
    let config = &ctx.state.config;
    match store::tokens::any_live_token(&ctx.state.db).await {
        Ok(false) => return Ok(()),
        Ok(true) => {}
        Err(error) => {
            tracing::warn!(error = ?error, "canvas auth: token count failed; passing");
            return Ok(());
        }
    }
    if let Some(bearer) = bearer_token(headers) {
        // A bearer that does not validate never falls through to the origin checks.
        if is_admin_token(config, bearer) {
            return Ok(());
        }
        return match store::tokens::workspace_of_token(&ctx.state.db, bearer).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(unauthorized("invalid admin auth token")),
            Err(error) => Err(super::platform_unavailable(error)),
        };
    }
    let origin_allowed = header(headers, ORIGIN).is_some_and(|origin| {
        CANVAS_ORIGINS.contains(&origin) || config.cors_origins.iter().any(|o| o == origin)
    });
    if origin_allowed || same_origin_canvas(config, headers) {
        return Ok(());
    }
    Err(unauthorized("admin auth required"))
}
