//! `/registry/*`: agents register, heartbeat and publish their card; peers discover each other.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::agents::status::{self, Health};
use crate::auth::agent::{WORKSPACE_ID_HEADER, require_agent_token};
use crate::error::ApiResult;
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// The largest agent card accepted, serialised.
pub const MAX_AGENT_CARD_BYTES: usize = 256 * 1024;
/// The original clamps reported spend to $10B in cents.
const MAX_MONTHLY_SPEND: i64 = 1_000_000_000_000;
const INVALID_BODY: &str = "invalid request body";

#[derive(Deserialize)]
struct RegisterBody {
    id: Uuid,
    url: String,
    agent_card: Value,
}

/// `POST /registry/register`: the agent is up at `url`, publishing `agent_card`. The first
/// registration of a workspace without a live token mints its token and returns it once.
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: RegisterBody = parse_body(&body, INVALID_BODY)?;
    check_card_size(&body.agent_card)?;
    crate::agents::url::validate(&body.url, state.config.org_id.is_some())
        .await
        .map_err(ApiError::BadRequest)?;
    require_agent_token(&state, &headers, body.id).await?;

    let mut tx = state
        .db
        .begin()
        .await
        .map_err(ApiError::internal("registration failed"))?;
    let url = store::registry::register(&mut *tx, body.id, &body.url, &body.agent_card)
        .await
        .map_err(ApiError::internal("registration failed"))?
        .ok_or_else(workspace_not_found)?;
    let payload = json!({ "agent_card": body.agent_card, "url": url });
    store::events::record(&mut *tx, "WORKSPACE_ONLINE", Some(body.id), &payload)
        .await
        .map_err(ApiError::internal("registration failed"))?;
    let has_token = store::tokens::workspace_has_live_token(&mut *tx, body.id)
        .await
        .map_err(ApiError::internal("registration failed"))?;
    let minted = match has_token {
        true => None,
        false => Some(
            store::tokens::mint_workspace_token(&mut *tx, body.id)
                .await
                .map_err(ApiError::internal("registration failed"))?,
        ),
    };
    tx.commit()
        .await
        .map_err(ApiError::internal("registration failed"))?;

    Ok(Json(match minted {
        Some(token) => json!({ "auth_token": token, "status": "registered" }),
        None => json!({ "status": "registered" }),
    }))
}

#[derive(Deserialize)]
struct HeartbeatBody {
    workspace_id: Uuid,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    sample_error: String,
    #[serde(default)]
    active_tasks: i32,
    #[serde(default)]
    uptime_seconds: i32,
    #[serde(default)]
    current_task: String,
    #[serde(default)]
    monthly_spend: i64,
    #[serde(default)]
    runtime_state: String,
}

/// `POST /registry/heartbeat`: stores the agent's load and health and moves the workspace between
/// `online`, `degraded` and back (and out of `offline`, `provisioning`, `awaiting_agent`).
pub async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: HeartbeatBody = parse_body(&body, INVALID_BODY)?;
    require_agent_token(&state, &headers, body.workspace_id).await?;
    let id = body.workspace_id;

    let mut tx = state
        .db
        .begin()
        .await
        .map_err(ApiError::internal("failed to update"))?;
    let beat = store::registry::Heartbeat {
        workspace_id: id,
        error_rate: body.error_rate,
        sample_error: &body.sample_error,
        active_tasks: body.active_tasks,
        uptime_seconds: body.uptime_seconds,
        current_task: &body.current_task,
        monthly_spend: body.monthly_spend.clamp(0, MAX_MONTHLY_SPEND),
    };
    let outcome = store::registry::heartbeat(&mut *tx, &beat)
        .await
        .map_err(ApiError::internal("failed to update"))?
        .ok_or_else(workspace_not_found)?;
    let health = Health {
        error_rate: body.error_rate,
        sample_error: &body.sample_error,
        runtime_state: &body.runtime_state,
    };
    if let Some(change) = status::after_heartbeat(&outcome.status, health) {
        let moved = store::registry::transition_status(&mut *tx, id, &change.from, change.to)
            .await
            .map_err(ApiError::internal("failed to update"))?;
        if moved {
            store::events::record(&mut *tx, change.event, Some(id), &change.payload)
                .await
                .map_err(ApiError::internal("failed to update"))?;
        }
    }
    // Announced on commit; the canvas only hears of task changes, not every repeat.
    if body.current_task != outcome.previous_task {
        let task = json!({ "active_tasks": body.active_tasks, "current_task": body.current_task });
        store::events::announce(&mut *tx, "TASK_UPDATED", id, &task)
            .await
            .map_err(ApiError::internal("failed to update"))?;
    }
    let load = json!({ "active_tasks": body.active_tasks, "uptime_seconds": body.uptime_seconds });
    store::events::announce(&mut *tx, "WORKSPACE_HEARTBEAT", id, &load)
        .await
        .map_err(ApiError::internal("failed to update"))?;
    tx.commit()
        .await
        .map_err(ApiError::internal("failed to update"))?;
    Ok(Json(json!({ "status": "ok" })))
}

#[derive(Deserialize)]
struct UpdateCardBody {
    workspace_id: Uuid,
    agent_card: Value,
}

/// `POST /registry/update-card`: replaces the agent card.
pub async fn update_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: UpdateCardBody = parse_body(&body, INVALID_BODY)?;
    check_card_size(&body.agent_card)?;
    require_agent_token(&state, &headers, body.workspace_id).await?;

    let mut tx = state
        .db
        .begin()
        .await
        .map_err(ApiError::internal("failed to update card"))?;
    let updated = store::registry::update_card(&mut *tx, body.workspace_id, &body.agent_card)
        .await
        .map_err(ApiError::internal("failed to update card"))?;
    if !updated {
        return Err(workspace_not_found());
    }
    let payload = json!({ "agent_card": body.agent_card });
    store::events::record(
        &mut *tx,
        "AGENT_CARD_UPDATED",
        Some(body.workspace_id),
        &payload,
    )
    .await
    .map_err(ApiError::internal("failed to update card"))?;
    tx.commit()
        .await
        .map_err(ApiError::internal("failed to update card"))?;
    Ok(Json(json!({ "status": "updated" })))
}

/// `GET /registry/discover/{id}`: the URL at which the caller (`X-Workspace-ID`, already
/// authenticated by the route's guard) reaches workspace `id`, if the hierarchy allows it.
pub async fn discover(
    State(state): State<AppState>,
    Path(target): Path<String>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let caller = headers
        .get(WORKSPACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let (Some(caller), Ok(target)) = (caller, Uuid::parse_str(&target)) else {
        return Err(ApiError::BadRequest("invalid workspace ID".to_string()));
    };
    let allowed = store::registry::can_communicate(&state.db, caller, target)
        .await
        .map_err(ApiError::internal("lookup failed"))?;
    if !allowed {
        return Err(ApiError::WithBody {
            status: StatusCode::FORBIDDEN,
            body: json!({ "error": "not authorized to discover this workspace" }),
        });
    }
    let found = store::registry::discovery_row(&state.db, target)
        .await
        .map_err(ApiError::internal("lookup failed"))?;
    let Some(found) = found.filter(|row| row.status != "removed") else {
        return Err(workspace_not_found());
    };
    let Some(mut url) = found.url else {
        let error = if matches!(found.status.as_str(), "online" | "degraded") {
            "workspace has no URL"
        } else {
            "workspace not available"
        };
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": error, "status": found.status })),
        ));
    };
    if found.runtime == "external" {
        // An external agent registered a host-local URL; a containerised caller reaches the
        // host through Docker's alias, an external caller uses the URL as it is.
        let caller_row = store::registry::discovery_row(&state.db, caller)
            .await
            .map_err(ApiError::internal("lookup failed"))?;
        if caller_row.is_none_or(|row| row.runtime != "external") {
            url = url
                .replacen("127.0.0.1", "host.docker.internal", 1)
                .replacen("localhost", "host.docker.internal", 1);
        }
    }
    Ok((
        StatusCode::OK,
        Json(json!({ "id": found.id, "name": found.name, "url": url })),
    ))
}

/// `GET /registry/{id}/peers`: the workspaces `id` may talk to: siblings, children, parent.
pub async fn peers(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Peer>>> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest("invalid workspace ID".to_string()))?;
    let peers = store::registry::peers(&state.db, id)
        .await
        .map_err(ApiError::internal("lookup failed"))?;
    let peers = peers.ok_or_else(workspace_not_found)?;
    Ok(Json(peers.into_iter().map(Peer::from).collect()))
}

/// A peer on the wire, keys in the original's (alphabetical) order.
#[derive(Debug, serde::Serialize)]
pub struct Peer {
    active_tasks: i32,
    agent_card: Option<Value>,
    id: Uuid,
    name: String,
    parent_id: Option<Uuid>,
    role: Option<String>,
    status: String,
    tier: i32,
    url: String,
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

#[derive(Deserialize)]
struct CheckAccessBody {
    caller_id: String,
    target_id: String,
}

/// `POST /registry/check-access`: whether `caller_id` may talk to `target_id`.
pub async fn check_access(State(state): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
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
            .map_err(ApiError::internal("lookup failed"))?,
        // Ids that name no workspace reach nothing, except themselves (as in the original).
        _ => body.caller_id == body.target_id,
    };
    Ok(Json(json!({ "allowed": allowed })))
}

fn check_card_size(card: &Value) -> Result<(), ApiError> {
    if card.to_string().len() > MAX_AGENT_CARD_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "agent_card exceeds {MAX_AGENT_CARD_BYTES} bytes"
        )));
    }
    Ok(())
}

fn workspace_not_found() -> ApiError {
    ApiError::NotFound("workspace not found".to_string())
}
