//! Secrets: `/workspaces/{id}/secrets…` (one workspace, overriding globals), `/settings/secrets…`
//! and `/admin/secrets…` (global), as `handlers/secrets.go` at 624ef4d0. Values are encrypted at
//! rest and leave the server only through `GET …/secrets/values`, for the workspace's own agent.
//! A change records `WORKSPACE_RESTART_REQUESTED` for every workspace whose environment it
//! changes, in the same transaction (there is no provisioner here to restart anything).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::types::{
    DecryptFailure, DependentWorkspace, Dependents, SecretDone, SecretEntry, SetSecretBody,
};
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::provisioner::PendingRestarts;
use crate::{ApiError, AppState};
use store::StoreError;
use store::secret_scopes::{self, Scope};

/// Keys longer than this are refused (environment variable names, not documents).
const MAX_KEY_BYTES: usize = 256;
/// Values larger than this are refused: a secret is a credential, not a file.
const MAX_VALUE_BYTES: usize = 64 * 1024;
const INVALID_BODY: &str = "invalid request body";

fn entries(keys: Vec<secret_scopes::SecretKey>) -> Vec<SecretEntry> {
    keys.into_iter()
        .map(|k| SecretEntry {
            key: k.key,
            has_value: true,
            scope: k.scope.as_str(),
            created_at: k.created_at,
            updated_at: k.updated_at,
        })
        .collect()
}

/// The keys and values of a write body, validated: each key non-empty, at most
/// [`MAX_KEY_BYTES`], without `/` or control characters; each value non-empty, at most
/// [`MAX_VALUE_BYTES`].
fn parse_writes(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let invalid = || ApiError::BadRequest(INVALID_BODY.to_string());
    let body: SetSecretBody = serde_json::from_slice(body).map_err(|_| invalid())?;
    let writes = match (body.key, body.value, body.secrets) {
        (Some(key), Some(value), None) => BTreeMap::from([(key, value)]),
        (None, None, Some(many)) if !many.is_empty() => many,
        _ => return Err(invalid()),
    };
    for (key, value) in &writes {
        if key.is_empty() || value.is_empty() {
            return Err(invalid());
        }
        if key.len() > MAX_KEY_BYTES || key.contains('/') || key.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "invalid secret key: must be 1-{MAX_KEY_BYTES} bytes without '/' or control characters"
            )));
        }
        if value.len() > MAX_VALUE_BYTES || value.contains('\0') {
            return Err(ApiError::BadRequest(format!(
                "invalid secret value for {key}: at most {MAX_VALUE_BYTES} bytes, no NUL"
            )));
        }
    }
    Ok(writes)
}

fn done(status: &'static str, keys: Vec<String>, scope: Option<&'static str>) -> SecretDone {
    let (key, keys) = if keys.len() == 1 {
        (keys.into_iter().next(), None)
    } else {
        (None, Some(keys))
    };
    SecretDone {
        status,
        key,
        keys,
        scope,
    }
}

/// Which scope a write or delete changes.
#[derive(Debug, Clone, Copy)]
enum Target {
    Workspace(Uuid),
    Global,
}

impl Target {
    /// The original's 500 messages differ by scope (`handlers/secrets.go` at 624ef4d0).
    fn failure(self, step: &str) -> String {
        match (self, step) {
            (Target::Workspace(_), "encrypt" | "save" | "delete") => {
                format!("failed to {step} secret")
            }
            _ => format!("failed to {step}"),
        }
    }

    /// Maps a store error; an unknown workspace is a 404, not a save failure.
    fn error(self, step: &'static str) -> impl Fn(StoreError) -> ApiError {
        move |error| {
            if matches!(self, Target::Workspace(_)) && error.is_missing_reference() {
                return ApiError::NotFound("workspace not found".to_string());
            }
            let step = if matches!(error, StoreError::Crypto(_)) {
                "encrypt"
            } else {
                step
            };
            ApiError::Internal {
                context: self.failure(step),
                source: error.into(),
            }
        }
    }

    fn scope(self) -> Option<&'static str> {
        match self {
            Target::Workspace(_) => None,
            Target::Global => Some("global"),
        }
    }

    async fn upsert(
        self,
        conn: &mut sqlx::PgConnection,
        crypto: &store::crypto::Crypto,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        match self {
            Target::Workspace(id) => store::secrets::upsert(conn, crypto, id, key, value).await,
            Target::Global => secret_scopes::upsert_global(conn, crypto, key, value).await,
        }
    }

    async fn remove(self, conn: &mut sqlx::PgConnection, key: &str) -> Result<bool, StoreError> {
        match self {
            Target::Workspace(id) => store::secrets::delete(conn, id, key).await,
            Target::Global => secret_scopes::delete_global(conn, key).await,
        }
    }

    /// Records `WORKSPACE_RESTART_REQUESTED` for every workspace whose environment the change of
    /// `key` reaches: the workspace itself, or every live workspace inheriting the global key.
    async fn request_restarts(
        self,
        state: &AppState,
        conn: &mut sqlx::PgConnection,
        key: &str,
        pending: &mut PendingRestarts,
    ) -> Result<(), StoreError> {
        let reached = match self {
            Target::Workspace(id) => vec![id],
            Target::Global => secret_scopes::inheriting_workspaces(&mut *conn, key).await?,
        };
        let payload = json!({ "reason": "secrets changed", "keys": [key] });
        crate::provisioner::request_restart(&state.provisioning, conn, &reached, &payload, pending)
            .await
    }
}

/// Writes every key of the body in one transaction, with its restart requests.
async fn write(
    state: &AppState,
    target: Target,
    body: &[u8],
) -> Result<Json<SecretDone>, ApiError> {
    let writes = parse_writes(body)?;
    let failed = target.error("save");
    let mut tx = state.db.begin().await.map_err(|e| failed(e.into()))?;
    let mut restarts = PendingRestarts::default();
    for (key, value) in &writes {
        target
            .upsert(&mut tx, &state.crypto, key, value)
            .await
            .map_err(&failed)?;
        target
            .request_restarts(state, &mut tx, key, &mut restarts)
            .await
            .map_err(&failed)?;
    }
    tx.commit().await.map_err(|e| failed(e.into()))?;
    restarts.dispatch(state);
    let keys = writes.into_keys().collect();
    Ok(Json(done("saved", keys, target.scope())))
}

/// Deletes one key (404 `secret not found` when it has no value in that scope).
async fn remove(
    state: &AppState,
    target: Target,
    key: String,
) -> Result<Json<SecretDone>, ApiError> {
    let failed = target.error("delete");
    let mut tx = state.db.begin().await.map_err(|e| failed(e.into()))?;
    if !target.remove(&mut tx, &key).await.map_err(&failed)? {
        return Err(ApiError::NotFound("secret not found".to_string()));
    }
    let mut restarts = PendingRestarts::default();
    target
        .request_restarts(state, &mut tx, &key, &mut restarts)
        .await
        .map_err(&failed)?;
    tx.commit().await.map_err(|e| failed(e.into()))?;
    restarts.dispatch(state);
    Ok(Json(done("deleted", vec![key], target.scope())))
}

/// `GET /workspaces/{id}/secrets`: the workspace's keys, then the globals it inherits.
#[utoipa::path(get, path = "/workspaces/{id}/secrets", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Keys and their scope, never values", body = Vec<SecretEntry>),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<Vec<SecretEntry>>, ApiError> {
    let keys = secret_scopes::list_merged(&state.db, id)
        .await
        .map_err(ApiError::internal("query failed"))?;
    Ok(Json(entries(keys)))
}

/// `GET /workspaces/{id}/secrets/values`: the decrypted environment of the workspace's agent,
/// globals overridden by its own keys. Refuses the whole bundle when any value fails to decrypt
/// (`handlers/secrets.go:113-209` at 624ef4d0).
#[utoipa::path(get, path = "/workspaces/{id}/secrets/values", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "KEY → plaintext", body = BTreeMap<String, String>),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not the workspace's own token", body = ErrorBody),
        (status = 500, description = "A value did not decrypt", body = DecryptFailure)))]
pub async fn values(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    let sealed = secret_scopes::sealed_for_workspace(&state.db, id)
        .await
        .map_err(ApiError::internal("query failed"))?;
    let mut bundle = BTreeMap::new();
    let mut failed_keys = Vec::new();
    for secret in sealed {
        match state
            .crypto
            .decrypt(&secret.encrypted_value, secret.encryption_version)
        {
            Ok(plain) => {
                let value = String::from_utf8_lossy(&plain).into_owned();
                bundle.insert(secret.key, value);
            }
            Err(_) => failed_keys.push(format!("{}:{}", secret.scope.as_str(), secret.key)),
        }
    }
    if !failed_keys.is_empty() {
        let body = DecryptFailure {
            error: "one or more secrets failed to decrypt; refusing to return partial bundle"
                .to_string(),
            failed_keys,
        };
        return Err(ApiError::WithBody {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: serde_json::to_value(body).unwrap_or_default(),
        });
    }
    Ok(Json(bundle))
}

/// `POST|PUT /workspaces/{id}/secrets`: upserts one key (or several, in one transaction).
#[utoipa::path(put, path = "/workspaces/{id}/secrets", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = SetSecretBody,
    responses(
        (status = 200, description = "Saved", body = SecretDone),
        (status = 400, description = "invalid workspace ID / invalid request body", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 500, description = "failed to save secret", body = ErrorBody)))]
pub async fn put(
    state: State<AppState>,
    id: WorkspaceId,
    body: Bytes,
) -> Result<Json<SecretDone>, ApiError> {
    set(state, id, body).await
}

/// `POST /workspaces/{id}/secrets`: the same as PUT.
#[utoipa::path(post, path = "/workspaces/{id}/secrets", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = SetSecretBody,
    responses(
        (status = 200, description = "Saved", body = SecretDone),
        (status = 400, description = "invalid workspace ID / invalid request body", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 500, description = "failed to save secret", body = ErrorBody)))]
pub async fn post(
    state: State<AppState>,
    id: WorkspaceId,
    body: Bytes,
) -> Result<Json<SecretDone>, ApiError> {
    set(state, id, body).await
}

async fn set(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> Result<Json<SecretDone>, ApiError> {
    write(&state, Target::Workspace(id), &body).await
}

/// `DELETE /workspaces/{id}/secrets/{key}`: the workspace's own value only; a global value of
/// the same key applies again.
#[utoipa::path(delete, path = "/workspaces/{id}/secrets/{key}", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id"), ("key" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = SecretDone),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "secret not found", body = ErrorBody),
        (status = 500, description = "failed to delete secret", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Path(params): Path<(String, String)>,
) -> Result<Json<SecretDone>, ApiError> {
    let (_, key) = params;
    remove(&state, Target::Workspace(id), key).await
}

/// `GET /workspaces/{id}/secrets/{key}/dependents`: whether this workspace resolves `key`, and
/// from which scope (the canvas's delete dialog; the original had no such route).
#[utoipa::path(get, path = "/workspaces/{id}/secrets/{key}/dependents", tag = "secrets",
    params(("id" = String, Path, description = "Workspace id"), ("key" = String, Path)),
    responses(
        (status = 200, description = "The workspace, when it resolves the key", body = Dependents),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody)))]
pub async fn workspace_dependents(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Path(params): Path<(String, String)>,
) -> Result<Json<Dependents>, ApiError> {
    let (_, key) = params;
    dependents(&state, &key, Some(id), None).await
}

/// `GET /settings/secrets/{key}/dependents`: the workspaces that inherit the global `key`.
#[utoipa::path(get, path = "/settings/secrets/{key}/dependents", tag = "secrets",
    params(("key" = String, Path)),
    responses(
        (status = 200, description = "Workspaces inheriting the global key", body = Dependents),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody)))]
pub async fn global_dependents(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Dependents>, ApiError> {
    dependents(&state, &key, None, Some(Scope::Global)).await
}

async fn dependents(
    state: &AppState,
    key: &str,
    only: Option<Uuid>,
    scope: Option<Scope>,
) -> Result<Json<Dependents>, ApiError> {
    let found = secret_scopes::dependents(&state.db, key, only)
        .await
        .map_err(ApiError::internal("query failed"))?;
    let workspaces: Vec<DependentWorkspace> = found
        .into_iter()
        .filter(|d| scope.is_none_or(|s| s == d.scope))
        .map(|d| DependentWorkspace {
            id: d.id.to_string(),
            name: d.name,
            scope: d.scope.as_str(),
        })
        .collect();
    Ok(Json(Dependents {
        dependents: workspaces.iter().map(|w| w.name.clone()).collect(),
        workspaces,
    }))
}

/// `GET /settings/secrets` and `/admin/secrets`: every global key.
#[utoipa::path(get, path = "/settings/secrets", tag = "secrets",
    responses(
        (status = 200, description = "Global keys, never values", body = Vec<SecretEntry>),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody)))]
pub async fn list_global(
    State(state): State<AppState>,
) -> Result<Json<Vec<SecretEntry>>, ApiError> {
    let keys = secret_scopes::list_global(&state.db)
        .await
        .map_err(ApiError::internal("query failed"))?;
    Ok(Json(entries(keys)))
}

/// `GET /admin/secrets`: the same as `GET /settings/secrets`.
#[utoipa::path(get, path = "/admin/secrets", tag = "secrets",
    responses(
        (status = 200, description = "Global keys, never values", body = Vec<SecretEntry>),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody)))]
pub async fn admin_list_global(state: State<AppState>) -> Result<Json<Vec<SecretEntry>>, ApiError> {
    list_global(state).await
}

/// `PUT|POST /settings/secrets` and `POST /admin/secrets`: upserts global keys, then requests a
/// restart of every workspace that inherits them.
#[utoipa::path(put, path = "/settings/secrets", tag = "secrets", request_body = SetSecretBody,
    responses(
        (status = 200, description = "Saved", body = SecretDone),
        (status = 400, description = "invalid request body", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "failed to save", body = ErrorBody)))]
pub async fn set_global(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<SecretDone>, ApiError> {
    write(&state, Target::Global, &body).await
}

/// `POST /settings/secrets`: the same as PUT.
#[utoipa::path(post, path = "/settings/secrets", tag = "secrets", request_body = SetSecretBody,
    responses(
        (status = 200, description = "Saved", body = SecretDone),
        (status = 400, description = "invalid request body", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "failed to save", body = ErrorBody)))]
pub async fn post_global(
    state: State<AppState>,
    body: Bytes,
) -> Result<Json<SecretDone>, ApiError> {
    set_global(state, body).await
}

/// `POST /admin/secrets`: the same as `PUT /settings/secrets`.
#[utoipa::path(post, path = "/admin/secrets", tag = "secrets", request_body = SetSecretBody,
    responses(
        (status = 200, description = "Saved", body = SecretDone),
        (status = 400, description = "invalid request body", body = ErrorBody),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 500, description = "failed to save", body = ErrorBody)))]
pub async fn admin_set_global(
    state: State<AppState>,
    body: Bytes,
) -> Result<Json<SecretDone>, ApiError> {
    set_global(state, body).await
}

/// `DELETE /settings/secrets/{key}` and `/admin/secrets/{key}`.
#[utoipa::path(delete, path = "/settings/secrets/{key}", tag = "secrets",
    params(("key" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = SecretDone),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "secret not found", body = ErrorBody),
        (status = 500, description = "failed to delete", body = ErrorBody)))]
pub async fn delete_global(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<SecretDone>, ApiError> {
    remove(&state, Target::Global, key).await
}

/// `DELETE /admin/secrets/{key}`: the same as `DELETE /settings/secrets/{key}`.
#[utoipa::path(delete, path = "/admin/secrets/{key}", tag = "secrets",
    params(("key" = String, Path)),
    responses(
        (status = 200, description = "Deleted", body = SecretDone),
        (status = 401, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "secret not found", body = ErrorBody),
        (status = 500, description = "failed to delete", body = ErrorBody)))]
pub async fn admin_delete_global(
    state: State<AppState>,
    key: Path<String>,
) -> Result<Json<SecretDone>, ApiError> {
    delete_global(state, key).await
}
