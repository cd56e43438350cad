//! `POST|GET /workspaces/{id}/activity`: what agents report they did.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use store::activity::{ActivityFilter, ActivityRow, Cursor, NewActivity};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// The activity types the original accepts.
pub const ACTIVITY_TYPES: [&str; 7] = [
    "a2a_send",
    "a2a_receive",
    "task_update",
    "agent_log",
    "skill_promotion",
    "memory_write",
    "error",
];
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// The activity types the server accepts, as the document shows them ([`ACTIVITY_TYPES`]).
#[derive(Debug, ToSchema)]
#[allow(non_camel_case_types, dead_code)] // documentation only: the names are the wire values
pub enum ActivityType {
    a2a_send,
    a2a_receive,
    task_update,
    agent_log,
    skill_promotion,
    memory_write,
    error,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportBody {
    #[schema(value_type = ActivityType)]
    activity_type: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    target_id: String,
    #[serde(default)]
    source_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error_detail: String,
    duration_ms: Option<i32>,
    #[schema(value_type = Option<Object>)]
    request_body: Option<Box<RawValue>>,
    #[schema(value_type = Option<Object>)]
    response_body: Option<Box<RawValue>>,
    /// The older name of `request_body`.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Box<RawValue>>,
}

/// `POST /workspaces/{id}/activity`: records one activity and announces `ACTIVITY_LOGGED`.
#[utoipa::path(post, path = "/workspaces/{id}/activity", tag = "activity",
    params(("id" = Uuid, Path)), request_body = ReportBody, responses(
    (status = 200, description = "Logged", body = StatusBody),
    (status = 400, description = "Invalid body", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 403, description = "source_id is another workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 413, description = "Body too large"),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    body: Bytes,
) -> ApiResult<Json<StatusBody>> {
    let body: ReportBody = parse_body(&body, "invalid request body")?;
    let activity = new_activity(&body, workspace_id)?;

    log(&state.db, &activity)
        .await
        .context("failed to log activity")?; // an unknown workspace is 404
    Ok(Json(StatusBody { status: "logged" }))
}

/// Validates a report in the original's order: its type, then who it is from and about.
fn new_activity(body: &ReportBody, workspace_id: Uuid) -> ApiResult<NewActivity<'_>> {
    if body.activity_type.is_empty() {
        return Err(ApiError::BadRequest("invalid request body".to_string()));
    }
    if !ACTIVITY_TYPES.contains(&body.activity_type.as_str()) {
        let message = format!(
            "invalid activity_type, must be one of: {}",
            ACTIVITY_TYPES.join(", ")
        );
        return Err(ApiError::BadRequest(message));
    }
    // The bearer proves the caller owns `{id}`; it may not attribute the log to another workspace.
    let source_id = match body.source_id.as_str() {
        "" => workspace_id,
        other if Uuid::parse_str(other).ok() == Some(workspace_id) => workspace_id,
        _ => {
            let refused = ErrorBody {
                code: None,
                error: "source_id must match authenticated workspace".to_string(),
            };
            return Err(ApiError::with_body(StatusCode::FORBIDDEN, &refused));
        }
    };
    let target_id = match body.target_id.as_str() {
        "" => None,
        other => Some(
            Uuid::parse_str(other)
                .map_err(|_| ApiError::BadRequest("invalid target_id".to_string()))?,
        ),
    };
    let status = if body.status.is_empty() {
        "ok"
    } else {
        body.status.as_str()
    };
    Ok(NewActivity {
        workspace_id,
        activity_type: &body.activity_type,
        source_id: Some(source_id),
        target_id,
        method: non_empty(&body.method),
        summary: non_empty(&body.summary),
        request_body: body.request_body.as_deref().or(body.metadata.as_deref()),
        response_body: body.response_body.as_deref(),
        duration_ms: body.duration_ms,
        status,
        error_detail: non_empty(&body.error_detail),
        tool_trace: None,
    })
}

/// Records one activity and announces `ACTIVITY_LOGGED` to the row's workspace (the original's
/// `LogActivity`, `handlers/activity.go:621-699` at 624ef4d0): the bodies only when present, the
/// tool trace only when there is one.
pub async fn log(db: &sqlx::PgPool, activity: &NewActivity<'_>) -> Result<Uuid, store::StoreError> {
    let announced = announcement(activity);
    let mut tx = db.begin().await?;
    let id = store::activity::insert(&mut *tx, activity).await?;
    store::events::announce(
        &mut *tx,
        "ACTIVITY_LOGGED",
        activity.workspace_id,
        &announced,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The `ACTIVITY_LOGGED` payload of an activity.
pub fn announcement(activity: &NewActivity<'_>) -> Box<RawValue> {
    crate::json::raw(&Announced {
        activity_type: activity.activity_type,
        duration_ms: activity.duration_ms,
        method: activity.method,
        source_id: activity.source_id,
        status: activity.status,
        summary: activity.summary,
        target_id: activity.target_id,
        request_body: activity.request_body,
        response_body: activity.response_body,
        tool_trace: activity.tool_trace,
    })
}

/// The `ACTIVITY_LOGGED` payload: the bodies only when present.
#[derive(Serialize)]
struct Announced<'a> {
    activity_type: &'a str,
    duration_ms: Option<i32>,
    method: Option<&'a str>,
    source_id: Option<Uuid>,
    status: &'a str,
    summary: Option<&'a str>,
    target_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_trace: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this activity type.
    #[serde(default, rename = "type")]
    activity_type: String,
    /// `canvas` or `agent`.
    #[serde(default)]
    source: String,
    /// Only rows from or to this workspace.
    #[serde(default)]
    peer_id: String,
    /// Only rows older than this RFC 3339 time.
    #[serde(default)]
    before_ts: String,
    /// Only rows of the last this many seconds (at most 30 days).
    #[serde(default)]
    since_secs: String,
    /// Only rows after this one, oldest first (410 when it is gone).
    #[serde(default)]
    since_id: String,
    /// At most this many (100 by default, 500 at most).
    #[serde(default)]
    limit: String,
}

/// The longest `since_secs` window: 30 days.
const MAX_SINCE_SECS: i64 = 30 * 24 * 3600;
const BEFORE_TS_ERROR: &str = "before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)";

/// A 410 answer whose body is the error alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorGone {
    error: &'static str,
}

/// `GET /workspaces/{id}/activity`: newest first, 100 by default, at most 500; after a `since_id`
/// cursor, oldest first (a poll-mode agent's inbox: each row is read once).
#[utoipa::path(get, path = "/workspaces/{id}/activity", tag = "activity",
    params(("id" = Uuid, Path), ListQuery),
    responses(
    (status = 200, description = "Newest first, or oldest first after since_id", body = Vec<Activity>),
    (status = 400, description = "Invalid id or filter", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 410, description = "The since_id row is gone", body = CursorGone),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<Activity>>> {
    let filter = filter_of(&state, workspace_id, &query).await?;
    let rows = store::activity::list(&state.db, workspace_id, &filter)
        .await
        .context("query failed")?;
    Ok(Json(rows.into_iter().map(Activity::from).collect()))
}

/// The filter, validated in the original's order (`handlers/activity.go:72-173` at 624ef4d0).
async fn filter_of(
    state: &AppState,
    workspace_id: Uuid,
    query: &ListQuery,
) -> ApiResult<ActivityFilter> {
    let bad = |message: &str| ApiError::BadRequest(message.to_string());
    let peer_id = match query.peer_id.as_str() {
        "" => None,
        text => Some(Uuid::parse_str(text).map_err(|_| bad("peer_id must be a UUID"))?),
    };
    let before = match query.before_ts.as_str() {
        "" => None,
        text => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| bad(BEFORE_TS_ERROR))?
                .with_timezone(&chrono::Utc),
        ),
    };
    let limit = parse_limit(&query.limit);
    let since_secs = match query.since_secs.as_str() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(n) if n > 0 => Some(n.min(MAX_SINCE_SECS)),
            _ => return Err(bad("since_secs must be a positive integer")),
        },
    };
    let after = match query.since_id.as_str() {
        "" => None,
        text => Some(cursor(state, workspace_id, text).await?),
    };
    let from_agent = match query.source.as_str() {
        "" => None,
        "agent" => Some(true),
        "canvas" => Some(false),
        _ => return Err(bad("source must be 'canvas' or 'agent'")),
    };
    Ok(ActivityFilter {
        activity_type: non_empty(&query.activity_type).map(str::to_string),
        from_agent,
        peer_id,
        before,
        since_secs,
        after,
        limit,
    })
}

async fn cursor(state: &AppState, workspace_id: Uuid, text: &str) -> ApiResult<Cursor> {
    let Ok(id) = Uuid::parse_str(text) else {
        return Err(gone());
    };
    store::activity::cursor(&state.db, workspace_id, id)
        .await
        .context("cursor lookup failed")?
        .ok_or_else(gone)
}

fn gone() -> ApiError {
    let body = CursorGone {
        error: "since_id cursor not found (row may have been pruned or belongs to a different workspace); omit since_id to reset",
    };
    ApiError::with_body(StatusCode::GONE, &body)
}

/// A positive limit, capped; anything else means the default (as the original).
fn parse_limit(text: &str) -> i64 {
    match text.parse::<i64>() {
        Ok(n) if n > 0 => n.min(MAX_LIMIT),
        _ => DEFAULT_LIMIT,
    }
}

/// An activity on the wire, keys in the original's (alphabetical) order; the bodies appear only
/// when present.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    activity_type: String,
    #[serde(serialize_with = "crate::json::go_time")]
    #[schema(value_type = String, format = DateTime)]
    created_at: chrono::DateTime<chrono::Utc>,
    duration_ms: Option<i32>,
    error_detail: Option<String>,
    id: Uuid,
    method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<Value>,
    source_id: Option<Uuid>,
    status: String,
    summary: Option<String>,
    target_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    tool_trace: Option<Value>,
    workspace_id: Uuid,
}

impl From<ActivityRow> for Activity {
    fn from(row: ActivityRow) -> Self {
        Self {
            activity_type: row.activity_type,
            created_at: row.created_at,
            duration_ms: row.duration_ms,
            error_detail: row.error_detail,
            id: row.id,
            method: row.method,
            request_body: row.request_body,
            response_body: row.response_body,
            source_id: row.source_id,
            status: row.status,
            summary: row.summary,
            target_id: row.target_id,
            tool_trace: row.tool_trace,
            workspace_id: row.workspace_id,
        }
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_caps_like_the_original() {
        assert_eq!(parse_limit(""), 100);
        assert_eq!(parse_limit("abc"), 100);
        assert_eq!(parse_limit("0"), 100);
        assert_eq!(parse_limit("-3"), 100);
        assert_eq!(parse_limit("2"), 2);
        assert_eq!(parse_limit("9999"), 500);
    }
}
