//! Workspace tokens: `GET|POST /workspaces/{id}/tokens`, `DELETE /workspaces/{id}/tokens/{tokenId}`
//! (`handlers/tokens.go` at 624ef4d0). The plaintext is shown once at mint; only its hash is
//! stored. Every request re-validates its bearer against the database (there is no token cache),
//! so a revoked token is refused from the next request on.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use uuid::Uuid;

use super::types::{MintedToken, StatusOnly, TokenEntry, TokenList, TokenPage};
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};
use store::StoreError;

/// At most this many live tokens per workspace (`handlers/tokens.go:79` at 624ef4d0).
pub const MAX_LIVE_TOKENS: i64 = 50;
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// `limit` in 1..=200 and `offset` ≥ 0; anything else falls back to 50 and 0.
fn page(query: &TokenPage) -> (i64, i64) {
    let parse = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<i64>().ok());
    let limit = parse(&query.limit)
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .unwrap_or(DEFAULT_LIMIT);
    let offset = parse(&query.offset).filter(|n| *n >= 0).unwrap_or(0);
    (limit, offset)
}

/// `GET /workspaces/{id}/tokens`: live tokens, newest first (prefix and times only).
#[utoipa::path(get, path = "/workspaces/{id}/tokens", tag = "tokens",
    params(("id" = String, Path, description = "Workspace id"),
           ("limit" = Option<String>, Query), ("offset" = Option<String>, Query)),
    responses(
        (status = 200, description = "A page of live tokens", body = TokenList),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 500, description = "failed to list tokens", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<TokenPage>,
) -> Result<Json<TokenList>, ApiError> {
    let (limit, offset) = page(&query);
    let rows = store::token_admin::list_workspace_tokens(&state.db, id, limit, offset)
        .await
        .map_err(ApiError::internal("failed to list tokens"))?;
    let tokens: Vec<TokenEntry> = rows
        .into_iter()
        .map(|t| TokenEntry {
            id: t.id.to_string(),
            prefix: t.prefix,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
        })
        .collect();
    Ok(Json(TokenList {
        count: tokens.len(),
        tokens,
    }))
}

/// `POST /workspaces/{id}/tokens`: mints a token (201 with the plaintext, once). The cap is
/// checked and the token inserted under the workspace row's lock, so concurrent mints cannot
/// pass it together.
#[utoipa::path(post, path = "/workspaces/{id}/tokens", tag = "tokens",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 201, description = "The plaintext, shown once", body = MintedToken),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 429, description = "maximum 50 active tokens per workspace", body = ErrorBody),
        (status = 500, description = "failed to create token", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<(StatusCode, Json<MintedToken>), ApiError> {
    let failed = |error: StoreError| ApiError::internal("failed to create token")(error);
    let mut tx = state.db.begin().await.map_err(|e| failed(e.into()))?;
    if !store::workspace_config::lock_workspace(&mut *tx, id)
        .await
        .map_err(failed)?
    {
        return Err(ApiError::NotFound("workspace not found".to_string()));
    }
    let live = store::token_admin::count_live_workspace_tokens(&mut *tx, id)
        .await
        .map_err(failed)?;
    if live >= MAX_LIVE_TOKENS {
        return Err(ApiError::WithBody {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: serde_json::json!({
                "error": format!("maximum {MAX_LIVE_TOKENS} active tokens per workspace")
            }),
        });
    }
    let plaintext = store::tokens::mint_workspace_token(&mut *tx, id)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(|e| failed(e.into()))?;
    tracing::info!(workspace_id = %id, "tokens: issued a new workspace token");
    Ok((
        StatusCode::CREATED,
        Json(MintedToken {
            auth_token: plaintext,
            workspace_id: id.to_string(),
            message: "Save this token now — it cannot be retrieved again.",
        }),
    ))
}

/// `DELETE /workspaces/{id}/tokens/{tokenId}`: revokes one live token (the caller's own too).
#[utoipa::path(delete, path = "/workspaces/{id}/tokens/{tokenId}", tag = "tokens",
    params(("id" = String, Path, description = "Workspace id"), ("tokenId" = String, Path)),
    responses(
        (status = 200, description = "Revoked", body = StatusOnly),
        (status = 400, description = "invalid workspace ID / invalid token ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "token not found or already revoked", body = ErrorBody),
        (status = 500, description = "failed to revoke token", body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Path(params): Path<(String, String)>,
) -> Result<Json<StatusOnly>, ApiError> {
    let token_id = Uuid::parse_str(&params.1)
        .map_err(|_| ApiError::BadRequest("invalid token ID".to_string()))?;
    let revoked = store::token_admin::revoke_workspace_token(&state.db, id, token_id)
        .await
        .map_err(ApiError::internal("failed to revoke token"))?;
    if !revoked {
        return Err(ApiError::NotFound(
            "token not found or already revoked".to_string(),
        ));
    }
    tracing::info!(workspace_id = %id, token_id = %token_id, "tokens: revoked a workspace token");
    Ok(Json(StatusOnly { status: "revoked" }))
}
