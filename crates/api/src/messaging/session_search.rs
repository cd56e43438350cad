//! `GET /workspaces/{id}/session-search`: the workspace's own activity and memories, searched
//! together (the original's `SessionSearch`, `handlers/activity.go:280-418` at 624ef4d0).

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::format_go_time;

/// The default number of items, and the most one search returns.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Text searched for (case-insensitive, `ILIKE`); empty lists everything.
    #[serde(default)]
    q: String,
    /// 1 to 200 (default 50; anything else is the default, more than 200 is 200).
    #[serde(default)]
    limit: String,
}

/// One hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionItem {
    pub content: String,
    pub created_at: String,
    pub id: String,
    /// `activity` or `memory`.
    pub kind: String,
    /// The activity type, or the memory's scope.
    pub label: String,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Value>,
    pub status: String,
    pub workspace_id: String,
}

/// The `limit` rule of the original: a positive integer, at most 200, else 50.
pub fn limit_of(raw: &str) -> i64 {
    match raw.parse::<i64>() {
        Ok(n) if n > 0 => n.min(MAX_LIMIT),
        _ => DEFAULT_LIMIT,
    }
}

/// `GET /workspaces/{id}/session-search?q=&limit=`: newest first.
#[utoipa::path(get, path = "/workspaces/{id}/session-search", tag = "activity",
    params(("id" = Uuid, Path), SearchQuery), responses(
    (status = 200, description = "Activity rows and memories, newest first", body = Vec<SessionItem>),
    (status = 400, description = "Invalid workspace id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<SearchQuery>,
) -> ApiResult<Json<Vec<SessionItem>>> {
    let text = query.q.trim();
    let rows = store::session_search::search(&state.db, id, text, limit_of(&query.limit))
        .await
        .context("session search failed")?;
    let items = rows
        .into_iter()
        .map(|row| SessionItem {
            content: row.content,
            created_at: format_go_time(&row.created_at),
            id: row.id.to_string(),
            kind: row.kind,
            label: row.label,
            method: row.method,
            request_body: row.request_body,
            response_body: row.response_body,
            status: row.status,
            workspace_id: row.workspace_id.to_string(),
        })
        .collect();
    Ok(Json(items))
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_default_and_cap() {
        assert_eq!(super::limit_of(""), 50);
        assert_eq!(super::limit_of("0"), 50);
        assert_eq!(super::limit_of("x"), 50);
        assert_eq!(super::limit_of("7"), 7);
        assert_eq!(super::limit_of("999"), 200);
    }
}
