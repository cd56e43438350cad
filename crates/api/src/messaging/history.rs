//! `GET /workspaces/{id}/chat-history`: the canvas's conversation with a workspace, rebuilt from
//! its `a2a_receive` activity (the original's `handlers/chat_history.go:63-113` and
//! `internal/messagestore/postgres_store.go:120-457` at 624ef4d0).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::activity::{ActivityFilter, ActivityRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many exchanges (100 by default, 1000 at most).
    #[serde(default)]
    limit: String,
    /// Only exchanges older than this RFC 3339 time (the next page).
    #[serde(default)]
    before_ts: String,
}

/// A file of a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChatAttachment {
    pub name: String,
    pub uri: String,
    #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// One message of the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessage {
    pub id: Uuid,
    /// `user`, `agent`, or `system` (an error).
    pub role: &'static str,
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<ChatAttachment>,
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatHistory {
    pub messages: Vec<ChatMessage>,
    /// No older exchanges remain.
    pub reached_end: bool,
}

/// `GET /workspaces/{id}/chat-history`: newest exchange first; within one, the person's message
/// before the agent's answer.
#[utoipa::path(get, path = "/workspaces/{id}/chat-history", tag = "a2a",
    params(("id" = Uuid, Path), HistoryQuery), responses(
    (status = 200, description = "The conversation", body = ChatHistory),
    (status = 400, description = "Invalid id or before_ts", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 502, description = "History unavailable", body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<ChatHistory>> {
    let limit = match query.limit.parse::<i64>() {
        Ok(n) if n > 0 => n.min(MAX_LIMIT),
        _ => DEFAULT_LIMIT,
    };
    let before = match query.before_ts.as_str() {
        "" => None,
        text => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    ApiError::BadRequest(
                        "before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)".into(),
                    )
                })?
                .with_timezone(&chrono::Utc),
        ),
    };
    let filter = ActivityFilter {
        activity_type: Some("a2a_receive".into()),
        from_agent: Some(false),
        before,
        limit,
        ..ActivityFilter::default()
    };
    let rows = store::activity::list(&state.db, workspace_id, &filter)
        .await
        .map_err(|error| {
            tracing::warn!(error = %error, "chat history query failed");
            let body = ErrorBody {
                code: None,
                error: "chat history unavailable".into(),
            };
            ApiError::with_body(StatusCode::BAD_GATEWAY, &body)
        })?;
    let reached_end = (rows.len() as i64) < limit;
    let messages = rows.iter().flat_map(messages_of).collect();
    Ok(Json(ChatHistory {
        messages,
        reached_end,
    }))
}

/// The person's message and the agent's answer recorded in one row.
fn messages_of(row: &ActivityRow) -> Vec<ChatMessage> {
    let timestamp = row
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let message = |role, content: String, attachments| ChatMessage {
        id: Uuid::new_v4(),
        role,
        content,
        attachments,
        timestamp: timestamp.clone(),
    };
    let mut messages = Vec::new();
    if let Some(request) = row
        .request_body
        .as_ref()
        .and_then(|b| b.pointer("/params/message"))
    {
        let parts = request.get("parts");
        let text = parts.and_then(first_text).unwrap_or_default();
        let files = parts.map(files_of).unwrap_or_default();
        let empty = text.is_empty() && files.is_empty();
        if !empty && !text.starts_with("Delegation results are ready") {
            messages.push(message("user", text, files));
        }
    }
    if let Some(response) = &row.response_body {
        let text = answer_text(response);
        let files = answer_files(response);
        if !text.is_empty() || !files.is_empty() {
            let failed = row.status == "error" || text.to_lowercase().starts_with("agent error");
            messages.push(message(
                if failed { "system" } else { "agent" },
                text,
                files,
            ));
        }
    }
    messages
}

fn is_kind(part: &Value, kind: &str) -> bool {
    part.get("kind")
        .or_else(|| part.get("type"))
        .and_then(Value::as_str)
        == Some(kind)
}

fn texts(parts: &Value) -> impl Iterator<Item = &str> {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| match is_kind(part, "text") {
            true => part.get("text").and_then(Value::as_str),
            false => part.pointer("/root/text").and_then(Value::as_str),
        })
}

fn first_text(parts: &Value) -> Option<String> {
    texts(parts).find(|t| !t.is_empty()).map(str::to_string)
}

/// The answer's text: `result` as a string, else its parts' and artifacts' text, else `task`.
fn answer_text(body: &Value) -> String {
    let result = body.get("result");
    if let Some(text) = result.and_then(Value::as_str).filter(|t| !t.is_empty()) {
        return text.to_string();
    }
    let mut lines: Vec<&str> = Vec::new();
    if let Some(result) = result {
        lines.extend(result.get("parts").map(texts).into_iter().flatten());
        for artifact in result
            .get("artifacts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            lines.extend(artifact.get("parts").map(texts).into_iter().flatten());
        }
    }
    if lines.is_empty() {
        return body
            .get("task")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
    }
    lines.join("\n")
}

fn answer_files(body: &Value) -> Vec<ChatAttachment> {
    let holder = body.get("result").filter(|r| r.is_object()).unwrap_or(body);
    let mut lists: Vec<&Value> = ["/parts", "/status/message/parts", "/message/parts"]
        .iter()
        .filter_map(|path| holder.pointer(path))
        .collect();
    for artifact in holder
        .get("artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        lists.extend(artifact.get("parts"));
    }
    lists.into_iter().flat_map(files_of).collect()
}

/// File parts: v0.3 `{kind: file, file: {uri, name, mimeType, size}}` or v1 `{url, filename,
/// mediaType}`.
fn files_of(parts: &Value) -> Vec<ChatAttachment> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| {
            if let Some(file) = part.get("file").filter(|_| is_kind(part, "file")) {
                return Some(ChatAttachment {
                    uri: text(file, "uri")?,
                    name: text(file, "name").unwrap_or_default(),
                    mime_type: text(file, "mimeType"),
                    size: file.get("size").and_then(Value::as_i64),
                });
            }
            Some(ChatAttachment {
                uri: text(part, "url")?,
                name: text(part, "filename").unwrap_or_default(),
                mime_type: text(part, "mediaType"),
                size: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_read_from_every_shape() {
        assert_eq!(answer_text(&json!({"result": "plain"})), "plain");
        let message = json!({"result": {"parts": [{"kind": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "artifacts": [{"parts": [{"kind": "text", "text": "c"}]}]}});
        assert_eq!(answer_text(&message), "a\nb\nc");
        assert_eq!(answer_text(&json!({"task": "t"})), "t");
        let files = json!({"result": {"parts": [{"kind": "file", "file": {"uri": "u", "name": "n", "mimeType": "m"}},
            {"url": "v", "filename": "f"}]}});
        assert_eq!(answer_files(&files).len(), 2);
        assert_eq!(answer_files(&files)[0].mime_type.as_deref(), Some("m"));
    }
}
