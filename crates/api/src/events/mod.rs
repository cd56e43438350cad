//! `GET /events[/{workspaceId}]` (the recorded events) and `GET /ws` (the live stream).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::agents::guard::{WORKSPACE_ID_HEADER, require_agent_token};
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::events_hub::LiveEvent;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// An event on the wire, keys in the original's (alphabetical) order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    created_at: chrono::DateTime<chrono::Utc>,
    event_type: String,
    id: Uuid,
    payload: Option<serde_json::Value>,
    workspace_id: Option<Uuid>,
}

impl From<store::events::EventRow> for Event {
    fn from(row: store::events::EventRow) -> Self {
        Self {
            created_at: row.created_at,
            event_type: row.event_type,
            id: row.id,
            payload: row.payload,
            workspace_id: row.workspace_id,
        }
    }
}

/// `GET /events`: the newest 100 events.
#[utoipa::path(get, path = "/events", tag = "events", responses(
    (status = 200, description = "The newest 100 events", body = Vec<Event>),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Event>>> {
    let rows = store::events::list(&state.db, None)
        .await
        .context("query failed")?;
    Ok(Json(rows.into_iter().map(Event::from).collect()))
}

/// `GET /events/{workspaceId}`: the newest 100 events of one workspace.
#[utoipa::path(get, path = "/events/{workspaceId}", tag = "events",
    params(("workspaceId" = Uuid, Path)), responses(
    (status = 200, description = "The workspace's newest 100 events", body = Vec<Event>),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list_for_workspace(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Json<Vec<Event>>> {
    let rows = store::events::list(&state.db, Some(workspace_id))
        .await
        .context("query failed")?;
    Ok(Json(rows.into_iter().map(Event::from).collect()))
}

/// `GET /ws`: the live event stream. The canvas connects without `X-Workspace-ID` and receives
/// every event; an agent names itself with `X-Workspace-ID` (and its token, once it has one) and
/// receives the events of the workspaces it may talk to. With `CORS_ORIGINS` set, the `Origin`
/// must be one of them (a missing one too is refused), as the original's upgrader checked it.
#[utoipa::path(get, path = "/ws", tag = "events", responses(
    (status = 101, description = "The live event stream (WebSocket)"),
    (status = 400, description = "Not a WebSocket upgrade, or invalid X-Workspace-ID"),
    (status = 401, description = "Not the named workspace's token", body = ErrorBody),
    (status = 403, description = "`CORS_ORIGINS` is set and the `Origin` is missing or not one of them", body = ErrorBody),
    (status = 405, description = "Not a GET upgrade"),
    (status = 426, description = "Upgrade required")))]
pub async fn socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let agent = match headers
        .get(WORKSPACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(named) => {
            let id = Uuid::parse_str(named)
                .map_err(|_| ApiError::BadRequest("invalid workspace ID".to_string()))?;
            require_agent_token(&state, &headers, id).await?;
            Some(id)
        }
    };
    // The original authenticated the agent first, then its upgrader checked the origin.
    if !origin_allowed(&state.config.cors_origins, &headers) {
        let body = ErrorBody {
            code: None,
            error: "origin not allowed".to_string(),
        };
        return Err(ApiError::with_body(StatusCode::FORBIDDEN, &body));
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    Ok(upgrade.on_upgrade(move |socket| stream_events(state, agent, socket)))
}

/// The upgrader's origin rule (`handlers/socket.go:17-31` at 624ef4d0): anything when
/// `CORS_ORIGINS` is empty, else an `Origin` equal (ignoring case) to one of its entries; a
/// missing `Origin` matches none.
fn origin_allowed(cors_origins: &[String], headers: &HeaderMap) -> bool {
    if cors_origins.is_empty() {
        return true;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    cors_origins
        .iter()
        .any(|allowed| allowed.trim().eq_ignore_ascii_case(origin))
}

async fn stream_events(state: AppState, agent: Option<Uuid>, mut socket: WebSocket) {
    let mut events = state.events.subscribe();
    let mut visibility = Visibility::new(agent);
    let shutdown = state.events.shutdown().clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = socket.recv() => match incoming {
                // The canvas sends nothing we act on; reading keeps pings answered.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            event = events.recv() => match event {
                Ok(event) => {
                    if !visibility.allows(&state, &event).await {
                        continue;
                    }
                    let Ok(text) = serde_json::to_string(&*event) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "live stream subscriber fell behind; events skipped");
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// How long a subscriber's answer for one peer is reused: the hierarchy rarely changes, and a
/// busy peer would otherwise cost a query per event.
const PEER_ACCESS_TTL: Duration = Duration::from_secs(30);
/// Peers remembered per subscriber at most (the map is cleared when full).
const MAX_REMEMBERED_PEERS: usize = 1024;

/// What one `/ws` subscriber may see. Agents only see events of workspaces the hierarchy lets
/// them talk to, checked once per peer (then again after [`PEER_ACCESS_TTL`]); the canvas sees
/// all.
struct Visibility {
    agent: Option<Uuid>,
    peers: HashMap<Uuid, (bool, Instant)>,
}

impl Visibility {
    fn new(agent: Option<Uuid>) -> Self {
        Visibility {
            agent,
            peers: HashMap::new(),
        }
    }

    async fn allows(&mut self, state: &AppState, event: &LiveEvent) -> bool {
        let Some(agent) = self.agent else { return true };
        let Some(subject) = event.workspace() else {
            return false;
        };
        if let Some(&(allowed, checked_at)) = self.peers.get(&subject)
            && checked_at.elapsed() < PEER_ACCESS_TTL
        {
            return allowed;
        }
        match store::registry::can_communicate(&state.db, agent, subject).await {
            Ok(allowed) => {
                if self.peers.len() >= MAX_REMEMBERED_PEERS {
                    self.peers.clear();
                }
                self.peers.insert(subject, (allowed, Instant::now()));
                allowed
            }
            Err(error) => {
                // Not remembered: the next event asks again.
                tracing::warn!(error = %error, "live stream access check failed; event withheld");
                false
            }
        }
    }
}
