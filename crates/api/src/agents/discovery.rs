//! Discovery: where a peer is reachable, who one's peers are, and whether two may talk.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::workspaces::WorkspaceStatus;
use utoipa::ToSchema;
use uuid::Uuid;

use super::registry::INVALID_BODY;
use crate::agents::guard::WORKSPACE_ID_HEADER;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// Where to reach a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct Discovered {
    pub id: Uuid,
    pub name: String,
    pub url: String,
}

/// 503 of discovery: the target has no reachable URL (yet).
#[derive(Debug, Serialize, ToSchema)]
pub struct Unreachable {
    pub error: &'static str,
    pub status: String,
}

/// A peer on the wire, keys in the original's (alphabetical) order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Peer {
    pub active_tasks: i32,
    pub agent_card: Option<Value>,
    pub id: Uuid,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub role: Option<String>,
    pub status: String,
    pub tier: i32,
    pub url: String,
}

impl From<store::registry::PeerRow> for Peer {
    fn from(row: store::registry::PeerRow) -> Self {
        Self {
            active_tasks: row.active_tasks,
            agent_card: row.agent_card,
            id: row.id,
            name: row.name,
            parent_id: row.parent_id,
            role: row.role,
            status: row.status,
            tier: row.tier,
            url: row.url,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckAccessBody {
    pub caller_id: String,
    pub target_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessAnswer {
    pub allowed: bool,
}

/// `GET /registry/discover/{id}`: the URL at which the caller (`X-Workspace-ID`, already
/// authenticated by the route's guard) reaches workspace `id`, if the hierarchy allows it.
#[utoipa::path(get, path = "/registry/discover/{id}", tag = "registry",
    params(("id" = Uuid, Path),
           ("X-Workspace-ID" = Uuid, Header, description = "The calling workspace")),
    responses(
    (status = 200, description = "Where to reach it", body = Discovered),
    (status = 400, description = "Invalid ids", body = ErrorBody),
    (status = 401, description = "Not the caller's token", body = ErrorBody),
    (status = 403, description = "Hierarchy forbids it", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 503, description = "No URL yet", body = Unreachable)))]
pub async fn discover(
    State(state): State<AppState>,
    WorkspaceId(target): WorkspaceId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let caller = headers
        .get(WORKSPACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let Some(caller) = caller else {
        return Err(ApiError::BadRequest("invalid workspace ID".to_string()));
    };
    let allowed = store::registry::can_communicate(&state.db, caller, target)
        .await
        .context("lookup failed")?;
    if !allowed {
        let refused = ErrorBody {
            code: None,
            error: "not authorized to discover this workspace".to_string(),
        };
        return Err(ApiError::with_body(StatusCode::FORBIDDEN, &refused));
    }
    let found = store::registry::discovery_row(&state.db, target)
        .await
        .context("lookup failed")?;
    let status = |row: &store::registry::DiscoveryRow| WorkspaceStatus::from_column(&row.status);
    let Some(found) = found.filter(|row| status(row) != WorkspaceStatus::Removed) else {
        return Err(ApiError::workspace_not_found());
    };
    let available = matches!(
        status(&found),
        WorkspaceStatus::Online | WorkspaceStatus::Degraded
    );
    let mut url = match (&found.url, available) {
        (Some(url), true) => url.clone(),
        (None, true) => return Ok(unreachable("workspace has no URL", found.status)),
        // The original (`discovery.go` Discover) answers 503 for offline, paused, failed.
        (_, false) => return Ok(unreachable("workspace not available", found.status)),
    };
    if found.runtime == "external" {
        // An external URL was set by a client, not by a provisioner: it gets the same address
        // rules as a registration before anyone is sent there.
        let allow_private = state.config.org_id.is_some();
        if crate::agents::url::validate(&url, allow_private)
            .await
            .is_err()
        {
            return Ok(unreachable("workspace not available", found.status));
        }
        // An external agent registered a host-local URL; a containerised caller reaches the
        // host through Docker's alias, an external caller uses the URL as it is.
        let caller_row = store::registry::discovery_row(&state.db, caller)
            .await
            .context("lookup failed")?;
        if caller_row.is_none_or(|row| row.runtime != "external") {
            url = url
                .replacen("127.0.0.1", "host.docker.internal", 1)
                .replacen("localhost", "host.docker.internal", 1);
        }
    }
    let body = Discovered {
        id: found.id,
        name: found.name,
        url,
    };
    Ok(Json(body).into_response())
}

/// Discovery's 503: the target cannot be reached now.
fn unreachable(error: &'static str, status: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Unreachable { error, status }),
    )
        .into_response()
}

/// `GET /registry/{id}/peers`: the workspaces `id` may talk to: siblings, children, parent.
#[utoipa::path(get, path = "/registry/{id}/peers", tag = "registry",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "Siblings, children, parent", body = Vec<Peer>),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not the workspace's token", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn peers(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> ApiResult<Json<Vec<Peer>>> {
    let peers = store::registry::peers(&state.db, id)
        .await
        .context("lookup failed")?;
    let peers = peers.ok_or_else(ApiError::workspace_not_found)?;
    Ok(Json(peers.into_iter().map(Peer::from).collect()))
}

/// `POST /registry/check-access`: whether `caller_id` may talk to `target_id`.
#[utoipa::path(post, path = "/registry/check-access", tag = "registry",
    request_body = CheckAccessBody, responses(
    (status = 200, description = "The answer", body = AccessAnswer),
    (status = 400, description = "Invalid body", body = ErrorBody),
    (status = 413, description = "Body too large"),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn check_access(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<Json<AccessAnswer>> {
    let body: CheckAccessBody = parse_body(&body, INVALID_BODY)?;
    if body.caller_id.is_empty() || body.target_id.is_empty() {
        return Err(ApiError::BadRequest(INVALID_BODY.to_string()));
    }
    let allowed = match (
        Uuid::parse_str(&body.caller_id),
        Uuid::parse_str(&body.target_id),
    ) {
        (Ok(caller), Ok(target)) => store::registry::can_communicate(&state.db, caller, target)
            .await
            .context("lookup failed")?,
        // Ids that name no workspace reach nothing, except themselves (as in the original).
        _ => body.caller_id == body.target_id,
    };
    Ok(Json(AccessAnswer { allowed }))
}
