//! `GET|PUT /orgs/{id}/plugins/allowlist` (`handlers/org_plugin_allowlist.go:126-347` at
//! 624ef4d0). An org is a workspace id; no entries means every plugin is allowed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::validate_name;
use crate::auth::OrgCaller;
use crate::error::{ErrorBody, StoreContext};
use crate::{ApiError, AppState};

/// One allowed plugin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AllowedPlugin {
    pub plugin_name: String,
    pub enabled_by: String,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    pub enabled_at: DateTime<Utc>,
}

/// The GET answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Allowlist {
    pub allow_all: bool,
    pub org_id: String,
    pub plugins: Vec<AllowedPlugin>,
}

/// The PUT answer: the stored names (sorted, without duplicates; the original echoed the raw
/// request array, `null` when omitted: QUIRK 11).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AllowlistUpdated {
    pub allow_all: bool,
    pub org_id: String,
    pub plugins: Vec<String>,
}

/// The PUT body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AllowlistRequest {
    /// The allowed names; empty (or omitted) allows every plugin.
    #[serde(default)]
    pub plugins: Option<Vec<String>>,
    /// Who made the change (free text, required).
    #[serde(default)]
    pub enabled_by: String,
}

/// The org's id from the path; a malformed one is 400 `invalid org ID` (the original's query
/// failed with 500, QUIRK 11).
async fn org(
    state: &AppState,
    raw: &str,
    caller: Option<Extension<OrgCaller>>,
) -> Result<Uuid, ApiError> {
    let not_found = || ApiError::NotFound("org not found".into());
    let id = Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("invalid org ID".into()))?;
    // An org token answers 403 for any org but its own, before the existence check, so it
    // cannot probe which ids exist (the original checked existence first).
    if let Some(Extension(OrgCaller(token))) = caller
        && token.org_id != Some(id)
    {
        return Err(ApiError::WithBody {
            status: StatusCode::FORBIDDEN,
            body: json!({ "error": "org access denied" }),
        });
    }
    if !store::plugins::org_exists(&state.db, id)
        .await
        .context("failed to verify org")?
    {
        return Err(not_found());
    }
    Ok(id)
}

/// `GET /orgs/{id}/plugins/allowlist`.
#[utoipa::path(get, path = "/orgs/{id}/plugins/allowlist", tag = "plugins",
    params(("id" = String, Path, description = "Org (root workspace) id")),
    responses(
        (status = 200, description = "The allowlist", body = Allowlist),
        (status = 400, description = "invalid org ID", body = ErrorBody),
        (status = 401, description = "admin auth required", body = ErrorBody),
        (status = 403, description = "org access denied", body = ErrorBody),
        (status = 404, description = "org not found", body = ErrorBody),
        (status = 500, description = "failed to fetch allowlist", body = ErrorBody),
        (status = 503, description = "platform datastore unavailable", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    caller: Option<Extension<OrgCaller>>,
) -> Result<Json<Allowlist>, ApiError> {
    let id = org(&state, &raw, caller).await?;
    let rows = store::plugins::allowlist(&state.db, id)
        .await
        .context("failed to fetch allowlist")?;
    Ok(Json(Allowlist {
        allow_all: rows.is_empty(),
        org_id: id.to_string(),
        plugins: rows
            .into_iter()
            .map(|r| AllowedPlugin {
                plugin_name: r.plugin_name,
                enabled_by: r.enabled_by,
                enabled_at: r.enabled_at,
            })
            .collect(),
    }))
}

/// `PUT /orgs/{id}/plugins/allowlist`: replaces the list in one transaction.
#[utoipa::path(put, path = "/orgs/{id}/plugins/allowlist", tag = "plugins",
    params(("id" = String, Path, description = "Org (root workspace) id")),
    request_body = AllowlistRequest,
    responses(
        (status = 200, description = "Replaced", body = AllowlistUpdated),
        (status = 400, description = "invalid request body / enabled_by is required / invalid plugin name / invalid org ID", body = ErrorBody),
        (status = 401, description = "admin auth required", body = ErrorBody),
        (status = 403, description = "org access denied", body = ErrorBody),
        (status = 404, description = "org not found", body = ErrorBody),
        (status = 500, description = "failed to update allowlist", body = ErrorBody),
        (status = 503, description = "platform datastore unavailable", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    caller: Option<Extension<OrgCaller>>,
    body: Bytes,
) -> Result<Json<AllowlistUpdated>, ApiError> {
    let request: AllowlistRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("invalid request body".into()))?;
    if request.enabled_by.is_empty() {
        return Err(ApiError::BadRequest("enabled_by is required".into()));
    }
    let mut names = request.plugins.unwrap_or_default();
    for name in &names {
        if let Err(detail) = validate_name(name) {
            return Err(ApiError::WithBody {
                status: StatusCode::BAD_REQUEST,
                body: json!({ "detail": detail, "error": "invalid plugin name", "plugin_name": name }),
            });
        }
    }
    names.sort();
    names.dedup();
    let id = org(&state, &raw, caller).await?;
    let mut tx = state
        .db
        .begin()
        .await
        .context("failed to start transaction")?;
    store::plugins::replace_allowlist(&mut tx, id, &names, &request.enabled_by)
        .await
        .context("failed to update allowlist")?;
    tx.commit()
        .await
        .context("failed to commit allowlist update")?;
    Ok(Json(AllowlistUpdated {
        allow_all: names.is_empty(),
        org_id: id.to_string(),
        plugins: names,
    }))
}
