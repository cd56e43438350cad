//! Org API tokens: `GET|POST /org/tokens`, `DELETE /org/tokens/{id}` (`handlers/org_tokens.go`
//! at 624ef4d0). Minting is limited to [`MINT_LIMIT`] per hour per client IP, counted after
//! AdminAuth (so refused callers use none), bypassed in dev mode.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use uuid::Uuid;

use super::types::{MintOrgToken, MintedOrgToken, OrgTokenEntry, OrgTokenList, OrgTokenRevoked};
use crate::auth::OrgCaller;
use crate::error::ErrorBody;
use crate::middleware::client_addr::ClientAddr;
use crate::middleware::rate_limit::RateLimiter;
use crate::{ApiError, AppState};

/// Mints per client IP per [`MINT_WINDOW`] (`router.go:641-653` at 624ef4d0).
pub const MINT_LIMIT: u32 = 10;
pub const MINT_WINDOW: Duration = Duration::from_secs(3600);
/// Longest accepted name, in bytes.
const MAX_NAME_BYTES: usize = 100;

/// The mint limiter of one router, handed to the handler as a request extension.
#[derive(Debug, Clone)]
pub struct MintLimiter(RateLimiter);

impl MintLimiter {
    pub fn new() -> Self {
        MintLimiter(RateLimiter::with_window(MINT_LIMIT, MINT_WINDOW, false))
    }
}

impl Default for MintLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /org/tokens`: live org tokens, newest first (at most 500).
#[utoipa::path(get, path = "/org/tokens", tag = "tokens", responses(
    (status = 200, description = "Live org tokens", body = OrgTokenList),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 500, description = "failed to list tokens", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<OrgTokenList>, ApiError> {
    let rows = store::token_admin::list_org_tokens(&state.db)
        .await
        .map_err(ApiError::internal("failed to list tokens"))?;
    let tokens: Vec<OrgTokenEntry> = rows
        .into_iter()
        .map(|t| OrgTokenEntry {
            id: t.id.to_string(),
            prefix: t.prefix,
            name: t.name.filter(|n| !n.is_empty()),
            org_id: t.org_id.map(|o| o.to_string()),
            created_by: t.created_by.filter(|c| !c.is_empty()),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        })
        .collect();
    Ok(Json(OrgTokenList {
        count: tokens.len(),
        tokens,
    }))
}

/// `POST /org/tokens`: mints an org token (200 with the plaintext, once).
#[utoipa::path(post, path = "/org/tokens", tag = "tokens", request_body = MintOrgToken,
    responses(
        (status = 200, description = "The plaintext, shown once", body = MintedOrgToken),
        (status = 400, description = "name too long (max 100 chars)", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 429, description = "rate limit exceeded (10 mints per hour per IP)", body = ErrorBody),
        (status = 500, description = "failed to mint token", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(limiter): Extension<MintLimiter>,
    client: Option<Extension<ClientAddr>>,
    org_caller: Option<Extension<OrgCaller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.config.dev_mode() {
        return mint(&state, org_caller, &headers, &body)
            .await
            .into_response();
    }
    let client = client.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ClientAddr(ip))| ip,
    );
    let decision = limiter.0.check(client, Instant::now());
    let mut response = if decision.allowed {
        mint(&state, org_caller, &headers, &body)
            .await
            .into_response()
    } else {
        let body =
            serde_json::json!({"error": "rate limit exceeded", "retry_after": decision.reset_secs});
        let mut refused = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        refused
            .headers_mut()
            .insert("retry-after", HeaderValue::from(decision.reset_secs));
        refused
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(MINT_LIMIT));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_secs));
    response
}

async fn mint(
    state: &AppState,
    org_caller: Option<Extension<OrgCaller>>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<MintedOrgToken>, ApiError> {
    // The body is optional: one that does not bind mints an unnamed token, as the original.
    let name = serde_json::from_slice::<MintOrgToken>(body)
        .ok()
        .and_then(|b| b.name)
        .unwrap_or_default();
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::BadRequest(
            "name too long (max 100 chars)".to_string(),
        ));
    }
    let (created_by, org_id) = provenance(state, org_caller, headers).await;
    let minted = store::token_admin::mint_org_token_by(&state.db, &name, &created_by, org_id)
        .await
        .map_err(ApiError::internal("failed to mint token"))?;
    tracing::info!(id = %minted.id, by = %created_by, "orgtoken: minted");
    Ok(Json(MintedOrgToken {
        id: minted.id.to_string(),
        prefix: minted.prefix,
        name: (!name.is_empty()).then_some(name),
        auth_token: minted.plaintext,
        warning: "copy this token now; it will not be shown again",
    }))
}

/// Who minted: `org-token:<prefix>` (with that token's org), `session` when a cookie came
/// along, else `admin-token` (`handlers/org_tokens.go:137-175` at 624ef4d0).
async fn provenance(
    state: &AppState,
    org_caller: Option<Extension<OrgCaller>>,
    headers: &HeaderMap,
) -> (String, Option<Uuid>) {
    if let Some(Extension(OrgCaller(token))) = org_caller {
        let org = store::token_admin::org_of_token(&state.db, token.id)
            .await
            .ok()
            .flatten();
        return (format!("org-token:{}", token.prefix), org);
    }
    if headers.get(COOKIE).is_some_and(|c| !c.is_empty()) {
        return ("session".to_string(), None);
    }
    ("admin-token".to_string(), None)
}

/// `DELETE /org/tokens/{id}`: revokes a live org token (the caller's own too).
#[utoipa::path(delete, path = "/org/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Org token id")),
    responses(
        (status = 200, description = "Revoked", body = OrgTokenRevoked),
        (status = 400, description = "invalid token ID", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "token not found or already revoked", body = ErrorBody),
        (status = 500, description = "failed to revoke", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OrgTokenRevoked>, ApiError> {
    let parsed =
        Uuid::parse_str(&id).map_err(|_| ApiError::BadRequest("invalid token ID".to_string()))?;
    let revoked = store::token_admin::revoke_org_token(&state.db, parsed)
        .await
        .map_err(ApiError::internal("failed to revoke"))?;
    if !revoked {
        return Err(ApiError::NotFound(
            "token not found or already revoked".to_string(),
        ));
    }
    tracing::info!(id = %parsed, "orgtoken: revoked");
    Ok(Json(OrgTokenRevoked { revoked: id }))
}
