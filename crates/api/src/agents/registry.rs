//! `/registry/register`, `heartbeat` and `update-card`: an agent announces itself, its load and
//! its card.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::agents::guard::{AgentCaller, invalid_token, missing_token, require_agent_token};
use crate::agents::status::{self, Health};
use crate::auth::bearer_token;
use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// The largest agent card accepted, serialised.
pub const MAX_AGENT_CARD_BYTES: usize = 256 * 1024;
/// The original clamps reported spend to $10B in cents.
const MAX_MONTHLY_SPEND: i64 = 1_000_000_000_000;
pub(super) const INVALID_BODY: &str = "invalid request body";

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    pub id: Uuid,
    /// Where the agent listens; required in push mode only.
    #[serde(default)]
    pub url: String,
    #[schema(value_type = Object)]
    pub agent_card: Value,
    /// `push` (the platform calls the agent's URL) or `poll` (the agent reads its inbox, the
    /// activity log); unset keeps the workspace's mode.
    #[serde(default)]
    pub delivery_mode: String,
}

/// `registered`, with the workspace's token on its first registration only.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    pub delivery_mode: String,
    /// The secret the platform presents when it calls the agent (chat uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_inbound_secret: Option<String>,
    pub status: &'static str,
}

/// `POST /registry/register`: the agent is up at `url`, publishing `agent_card`. The first
/// registration of a workspace without a live token mints its token and returns it once.
#[utoipa::path(post, path = "/registry/register", tag = "registry",
    request_body = RegisterBody, responses(
    (status = 200, description = "Registered", body = Registered),
    (status = 400, description = "Invalid body or URL", body = ErrorBody),
    (status = 401, description = "Not the workspace's token", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 413, description = "Card or body too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Registered>> {
    let body: RegisterBody = parse_body(&body, INVALID_BODY)?;
    if !matches!(body.delivery_mode.as_str(), "" | "push" | "poll") {
        return Err(ApiError::BadRequest(
            "delivery_mode must be 'push' or 'poll'".into(),
        ));
    }
    check_card_size(&body.agent_card)?;
    // The bearer first, as in the original (`registry.go` Register): an unauthenticated caller
    // never reaches the URL rules and their DNS lookup.
    let caller = require_agent_token(&state, &headers, body.id).await?;
    let mode = effective_mode(&state, &body).await?;
    if mode == "push" {
        if body.url.is_empty() {
            let message = "url is required for push-mode workspaces";
            return Err(ApiError::BadRequest(message.into()));
        }
        crate::agents::url::validate(&body.url, state.config.org_id.is_some())
            .await
            .map_err(ApiError::BadRequest)?;
    }

    let mut tx = state.db.begin().await.context("registration failed")?;
    // The UPDATE locks the workspace's row, so concurrent first registrations queue here and
    // each sees the token a previous one committed.
    let url = store::registry::register(&mut *tx, body.id, &body.url, &body.agent_card, &mode)
        .await
        .context("registration failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    let has_token = store::tokens::workspace_has_live_token(&mut *tx, body.id)
        .await
        .context("registration failed")?;
    if has_token && caller == AgentCaller::Bootstrap {
        // Another first registration won the race: this caller holds no token.
        return Err(match bearer_token(&headers) {
            None => missing_token(),
            Some(_) => invalid_token(),
        });
    }
    let payload = json!({ "agent_card": body.agent_card, "delivery_mode": mode, "url": url });
    store::events::record(&mut *tx, "WORKSPACE_ONLINE", Some(body.id), &payload)
        .await
        .context("registration failed")?;
    let minted = match has_token {
        true => None,
        false => Some(
            store::tokens::mint_workspace_token(&mut *tx, body.id)
                .await
                .context("registration failed")?,
        ),
    };
    let secret = store::messaging::inbound_secret(&mut *tx, &state.crypto, body.id)
        .await
        .context("registration failed")?;
    tx.commit().await.context("registration failed")?;
    state.events.workspace_cache().invalidate(body.id);

    Ok(Json(Registered {
        auth_token: minted,
        delivery_mode: mode,
        platform_inbound_secret: secret,
        status: "registered",
    }))
}

/// The mode asked for, else the workspace's own (`handlers/registry.go:142-165` at 624ef4d0).
async fn effective_mode(state: &AppState, body: &RegisterBody) -> ApiResult<String> {
    if !body.delivery_mode.is_empty() {
        return Ok(body.delivery_mode.clone());
    }
    let stored = store::registry::delivery_mode(&state.db, body.id)
        .await
        .context("registration failed")?;
    Ok(stored.unwrap_or_else(|| "push".to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HeartbeatBody {
    pub workspace_id: Uuid,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub sample_error: String,
    #[serde(default)]
    pub active_tasks: i32,
    #[serde(default)]
    pub uptime_seconds: i32,
    #[serde(default)]
    pub current_task: String,
    #[serde(default)]
    pub monthly_spend: i64,
    /// `wedged` when the agent is alive but its runtime is stuck; empty when healthy.
    #[serde(default)]
    pub runtime_state: String,
    #[serde(default)]
    pub runtime_metadata: RuntimeMetadata,
}

/// What the agent's runtime declares about itself.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RuntimeMetadata {
    /// Seconds of silence after which a call to this agent is abandoned; absent or not positive
    /// restores the server's window.
    pub idle_timeout_seconds: Option<i64>,
}

/// `ok`, with the platform's secret for the agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_inbound_secret: Option<String>,
    pub status: &'static str,
}

/// `POST /registry/heartbeat`: stores the agent's load and health and moves the workspace between
/// `online`, `degraded` and back (and out of `offline`, `provisioning`, `awaiting_agent`).
#[utoipa::path(post, path = "/registry/heartbeat", tag = "registry",
    request_body = HeartbeatBody, responses(
    (status = 200, description = "Recorded", body = HeartbeatAnswer),
    (status = 400, description = "Invalid body", body = ErrorBody),
    (status = 401, description = "Not the workspace's token", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 413, description = "Body too large"),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<HeartbeatAnswer>> {
    let body: HeartbeatBody = parse_body(&body, INVALID_BODY)?;
    require_agent_token(&state, &headers, body.workspace_id).await?;
    let id = body.workspace_id;

    let mut tx = state.db.begin().await.context("failed to update")?;
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
        .context("failed to update")?
        .ok_or_else(ApiError::workspace_not_found)?;
    let health = Health {
        error_rate: body.error_rate,
        sample_error: &body.sample_error,
        runtime_state: &body.runtime_state,
    };
    if let Some(change) = status::after_heartbeat(outcome.status, health) {
        let moved = store::registry::transition_status(&mut *tx, id, change.from, change.to)
            .await
            .context("failed to update")?;
        if moved {
            store::events::record(&mut *tx, change.event, Some(id), &change.payload)
                .await
                .context("failed to update")?;
        }
    }
    // Announced on commit; the canvas only hears of task changes, not every repeat.
    if body.current_task != outcome.previous_task {
        let task = crate::json::raw(
            &json!({ "active_tasks": body.active_tasks, "current_task": body.current_task }),
        );
        store::events::announce(&mut *tx, "TASK_UPDATED", id, &task)
            .await
            .context("failed to update")?;
    }
    let load = crate::json::raw(
        &json!({ "active_tasks": body.active_tasks, "uptime_seconds": body.uptime_seconds }),
    );
    store::events::announce(&mut *tx, "WORKSPACE_HEARTBEAT", id, &load)
        .await
        .context("failed to update")?;
    let secret = store::messaging::inbound_secret(&mut *tx, &state.crypto, id)
        .await
        .context("failed to update")?;
    tx.commit().await.context("failed to update")?;
    let idle = body.runtime_metadata.idle_timeout_seconds;
    state.messaging.set_idle_override(id, idle);
    // Spare capacity: one queued request goes out (`handlers/registry.go:785-797` at 624ef4d0).
    match store::messaging::has_capacity(&state.db, id, body.active_tasks).await {
        Ok(true) => {
            state
                .messaging
                .spawn(crate::messaging::queue::drain_one(state.clone(), id));
        }
        Ok(false) => {}
        Err(error) => tracing::warn!(error = %error, "cannot read the agent's capacity"),
    }
    state.events.workspace_cache().invalidate(id);
    Ok(Json(HeartbeatAnswer {
        platform_inbound_secret: secret,
        status: "ok",
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateCardBody {
    pub workspace_id: Uuid,
    #[schema(value_type = Object)]
    pub agent_card: Value,
}

/// `POST /registry/update-card`: replaces the agent card.
#[utoipa::path(post, path = "/registry/update-card", tag = "registry",
    request_body = UpdateCardBody, responses(
    (status = 200, description = "Updated", body = StatusBody),
    (status = 400, description = "Invalid body", body = ErrorBody),
    (status = 401, description = "Not the workspace's token", body = ErrorBody),
    (status = 404, description = "Unknown", body = ErrorBody),
    (status = 413, description = "Card or body too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn update_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<StatusBody>> {
    let body: UpdateCardBody = parse_body(&body, INVALID_BODY)?;
    check_card_size(&body.agent_card)?;
    require_agent_token(&state, &headers, body.workspace_id).await?;

    let mut tx = state.db.begin().await.context("failed to update card")?;
    let updated = store::registry::update_card(&mut *tx, body.workspace_id, &body.agent_card)
        .await
        .context("failed to update card")?;
    if !updated {
        return Err(ApiError::workspace_not_found());
    }
    let payload = json!({ "agent_card": body.agent_card });
    store::events::record(
        &mut *tx,
        "AGENT_CARD_UPDATED",
        Some(body.workspace_id),
        &payload,
    )
    .await
    .context("failed to update card")?;
    tx.commit().await.context("failed to update card")?;
    state.events.workspace_cache().invalidate(body.workspace_id);
    Ok(Json(StatusBody { status: "updated" }))
}

fn check_card_size(card: &Value) -> Result<(), ApiError> {
    if card.to_string().len() > MAX_AGENT_CARD_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "agent_card exceeds {MAX_AGENT_CARD_BYTES} bytes"
        )));
    }
    Ok(())
}
