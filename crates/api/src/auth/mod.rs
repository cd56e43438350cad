//! The route guards (the original's `middleware/wsauth_middleware.go`): AdminAuth, WorkspaceAuth,
//! the `/state` own-token check and the test-token gate. `routes::router` applies one per route
//! from its [`Access`].

pub mod canvas;
pub mod session;

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, REFERER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::routes::Access;
use crate::{ApiConfig, ApiError, AppState};
pub use session::{SessionCacheLimits, SessionVerifier};

/// What the guards need: the app state and the session verifier (with its cache).
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub state: AppState,
    pub sessions: SessionVerifier,
}

impl AuthContext {
    pub fn new(state: AppState) -> Self {
        let config = &state.config;
        let sessions = SessionVerifier::new(
            config.cp_upstream_url.as_deref(),
            config.org_slug.as_deref(),
            SessionCacheLimits::default(),
        );
        AuthContext { state, sessions }
    }
}

/// The org token that authorised a request, put into its extensions for handlers that care.
#[derive(Debug, Clone)]
pub struct OrgCaller(pub store::tokens::OrgToken);

/// The bearer of the first `Authorization` header: exactly `Bearer ` then the token, trimmed.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

/// `ADMIN_TOKEN` comparison in constant time (digests make the lengths equal too).
pub fn is_admin_token(config: &ApiConfig, bearer: &str) -> bool {
    config.admin_token.as_ref().is_some_and(|admin| {
        Sha256::digest(admin.expose_secret().as_bytes())
            .ct_eq(&Sha256::digest(bearer.as_bytes()))
            .into()
    })
}

/// `Origin` equals `http(s)://<Host>`.
pub fn origin_is_host(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (header(headers, ORIGIN), header(headers, HOST)) else {
        return false;
    };
    is_scheme_host(origin, host)
}

/// A same-origin canvas request (only when `CANVAS_PROXY_URL` is set): the `Referer` is on this
/// host, or the `Origin` is this host.
pub fn same_origin_canvas(config: &ApiConfig, headers: &HeaderMap) -> bool {
    if config.canvas_proxy_url.as_deref().is_none_or(str::is_empty) {
        return false;
    }
    let Some(host) = header(headers, HOST) else {
        return false;
    };
    let referer_matches = header(headers, REFERER).is_some_and(|referer| {
        ["http://", "https://"].iter().any(|scheme| {
            referer
                .strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix(host))
                .is_some_and(|path| path.is_empty() || path.starts_with('/'))
        })
    });
    referer_matches || origin_is_host(headers)
}

/// A same-origin canvas request that also carries a session the control plane verifies: the
/// only way a request without a bearer passes WorkspaceAuth (and the terminal's and `/ws`'s
/// guards) outside dev mode. `Origin`/`Referer` alone can be forged by any non-browser client
/// (the original trusted them alone: `wsauth_middleware.go:112` at 624ef4d0); the session
/// cannot. The verifier's cache (30 s valid, 5 s invalid) keeps this off the hot path.
pub async fn verified_canvas_session(ctx: &AuthContext, headers: &HeaderMap) -> bool {
    if !same_origin_canvas(&ctx.state.config, headers) {
        return false;
    }
    match header(headers, COOKIE) {
        Some(cookie) => ctx.sessions.verify(cookie).await,
        None => false,
    }
}

fn is_scheme_host(value: &str, host: &str) -> bool {
    value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        == Some(host)
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name)?.to_str().ok()
}

fn unauthorized(message: &str) -> Response {
    ApiError::Unauthorized(message.to_string()).into_response()
}

/// Any failure of a guard's token lookup answers 503, like the original's guards: the caller
/// cannot be checked, so it is neither let through nor told it is unauthorised.
fn platform_unavailable(source: store::StoreError) -> Response {
    ApiError::datastore_unavailable(source).into_response()
}

/// Runs the guard of `access` in front of `next`.
pub async fn guard(
    access: Access,
    ctx: AuthContext,
    path_id: Option<String>,
    request: Request,
    next: Next,
) -> Response {
    let verdict = match access {
        Access::Public => Ok(None),
        Access::Admin => admin(&ctx, request.headers()).await,
        Access::Workspace => workspace(&ctx, request.headers(), path_id.as_deref()).await,
        Access::WorkspaceSelf => workspace_self(&ctx, request.headers(), path_id.as_deref()).await,
        Access::TestToken => test_token(&ctx.state.config, request.headers())
            .map(|()| None)
            .map_err(IntoResponse::into_response),
        // The body names the workspace: the handler checks once it has parsed it.
        Access::AgentBody => Ok(None),
        Access::AgentHeader => crate::agents::guard::caller_from_header(&ctx, request.headers())
            .await
            .map(|()| None),
        Access::LiveStream => live_stream(&ctx, request.headers()).await,
        Access::AgentPath => {
            crate::agents::guard::caller_from_path(&ctx, request.headers(), path_id.as_deref())
                .await
                .map(|()| None)
        }
        Access::CanvasOrBearer => canvas::canvas_or_bearer(&ctx, request.headers())
            .await
            .map(|()| None),
    };
    match verdict {
        Ok(org) => {
            let mut request = request;
            if let Some(org) = org {
                request.extensions_mut().insert(org);
            }
            next.run(request).await
        }
        Err(refusal) => refusal,
    }
}

/// The middleware function the router installs per route.
pub async fn middleware(
    State((access, ctx)): State<(Access, AuthContext)>,
    params: Option<Path<HashMap<String, String>>>,
    request: Request,
    next: Next,
) -> Response {
    let path_id = params.and_then(|Path(mut params)| params.remove("id"));
    guard(access, ctx, path_id, request, next).await
}

type Verdict = Result<Option<OrgCaller>, Response>;

/// AdminAuth, checks in the original's order.
async fn admin(ctx: &AuthContext, headers: &HeaderMap) -> Verdict {
    let config = &ctx.state.config;
    // `ADMIN_TOKEN` itself passes whatever the token count says, so its holder skips that round
    // trip (with the database down, the handler's own query answers the same 503).
    if bearer_token(headers).is_some_and(|bearer| is_admin_token(config, bearer)) {
        return Ok(None);
    }
    let any_token = match store::tokens::any_live_token(&ctx.state.db).await {
        Ok(any) => any,
        Err(error) => return Err(platform_unavailable(error)),
    };
    if !any_token && config.admin_token.is_none() {
        return Ok(None); // fresh install: nothing to protect yet
    }
    if config.dev_mode() {
        return Ok(None);
    }
    if let Some(cookie) = header(headers, COOKIE)
        && ctx.sessions.verify(cookie).await
    {
        return Ok(None);
    }
    let Some(bearer) = bearer_token(headers) else {
        return Err(unauthorized("admin auth required"));
    };
    if is_admin_token(config, bearer) {
        return Ok(None);
    }
    if let Some(org) = org_token(&ctx.state, bearer).await {
        return Ok(Some(org));
    }
    if config.admin_token.is_some() {
        return Err(unauthorized("invalid admin auth token")); // workspace tokens refused (#684)
    }
    // Deprecated tier 3: without ADMIN_TOKEN any live workspace token is an admin.
    match store::tokens::workspace_of_token(&ctx.state.db, bearer).await {
        Ok(Some(_)) => Ok(None),
        Ok(None) => Err(unauthorized("invalid admin auth token")),
        Err(error) => Err(platform_unavailable(error)),
    }
}

/// WorkspaceAuth: the bearer must be ADMIN_TOKEN, an org token, or this workspace's own
/// token; without a bearer only dev mode and same-origin canvas requests with a verified
/// session pass ([`verified_canvas_session`]).
async fn workspace(ctx: &AuthContext, headers: &HeaderMap, path_id: Option<&str>) -> Verdict {
    let config = &ctx.state.config;
    let Some(bearer) = bearer_token(headers) else {
        if config.dev_mode() || verified_canvas_session(ctx, headers).await {
            return Ok(None);
        }
        return Err(unauthorized("missing workspace auth token"));
    };
    if is_admin_token(config, bearer) {
        return Ok(None);
    }
    let wanted = path_id.and_then(|id| Uuid::parse_str(id).ok());
    // One round trip for the org-token and own-token checks.
    let check = store::tokens::check_bearer(&ctx.state.db, bearer, None)
        .await
        .map_err(platform_unavailable)?;
    workspace_verdict(&check, wanted).ok_or_else(|| unauthorized("invalid workspace auth token"))
}

/// WorkspaceAuth's answer for a bearer that is not ADMIN_TOKEN: `Some` when it passes (with the
/// org token it is, if it is one).
fn workspace_verdict(
    check: &store::tokens::BearerCheck,
    wanted: Option<Uuid>,
) -> Option<Option<OrgCaller>> {
    if let Some(org) = &check.org {
        return Some(Some(OrgCaller(org.clone())));
    }
    match check.owner {
        Some(owner) if Some(owner) == wanted => Some(None),
        _ => None,
    }
}

/// `/ws`: see [`Access::LiveStream`]. An agent subscriber is checked by the handler once.
async fn live_stream(ctx: &AuthContext, headers: &HeaderMap) -> Verdict {
    let config = &ctx.state.config;
    let agent = headers.contains_key(crate::agents::guard::WORKSPACE_ID_HEADER);
    if agent || config.canvas_proxy_url.as_deref().is_none_or(str::is_empty) || config.dev_mode() {
        return Ok(None);
    }
    if let Some(bearer) = bearer_token(headers) {
        if is_admin_token(config, bearer) {
            return Ok(None);
        }
        if let Some(org) = org_token(&ctx.state, bearer).await {
            return Ok(Some(org));
        }
    }
    if verified_canvas_session(ctx, headers).await {
        return Ok(None);
    }
    Err(unauthorized("admin auth required"))
}

/// `/state`: WorkspaceAuth, then, when the workspace has live tokens, only its own token. With
/// a bearer, both checks are one round trip ([`store::tokens::check_bearer`]).
async fn workspace_self(ctx: &AuthContext, headers: &HeaderMap, path_id: Option<&str>) -> Verdict {
    let id = path_id.and_then(|id| Uuid::parse_str(id).ok());
    let Some(bearer) = bearer_token(headers) else {
        workspace(ctx, headers, path_id).await?;
        let Some(id) = id else {
            return Ok(None); // the handler answers 400 for a malformed id
        };
        return match store::tokens::workspace_has_live_token(&ctx.state.db, id).await {
            Ok(false) => Ok(None),
            Ok(true) => Err(unauthorized("missing workspace auth token")),
            Err(error) => Err(ApiError::from_store(error, "auth check failed").into_response()),
        };
    };
    let check = match store::tokens::check_bearer(&ctx.state.db, bearer, id).await {
        Ok(check) => check,
        Err(error) => return Err(platform_unavailable(error)),
    };
    if !is_admin_token(&ctx.state.config, bearer) && workspace_verdict(&check, id).is_none() {
        return Err(unauthorized("invalid workspace auth token"));
    }
    let Some(id) = id else {
        return Ok(None); // the handler answers 400 for a malformed id
    };
    if check.workspace_has_live_token && check.owner != Some(id) {
        return Err(unauthorized("invalid workspace auth token"));
    }
    Ok(None)
}

/// The test-token route's own gate: off in production unless `MOLECULE_ENABLE_TEST_TOKENS`, and
/// only for `ADMIN_TOKEN` when one is set.
fn test_token(config: &ApiConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    let enabled = config.molecule_env != "production" || config.enable_test_tokens;
    if !enabled {
        return Err(ApiError::NotFound("not found".to_string()));
    }
    if config.admin_token.is_some()
        && !bearer_token(headers).is_some_and(|b| is_admin_token(config, b))
    {
        return Err(ApiError::Unauthorized("admin auth required".to_string()));
    }
    Ok(())
}

/// A valid org token; lookup errors count as invalid, like the original.
async fn org_token(state: &AppState, bearer: &str) -> Option<OrgCaller> {
    match store::tokens::validate_org_token(&state.db, bearer).await {
        Ok(found) => found.map(OrgCaller),
        Err(error) => {
            tracing::warn!(error = ?error, "org token lookup failed");
            None
        }
    }
}
