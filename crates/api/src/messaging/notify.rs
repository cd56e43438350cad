//! `POST /workspaces/{id}/notify`: an agent's message to the people on the canvas (the original's
//! `handlers/activity.go:420-495` and `agent_message_writer.go:95-173` at 624ef4d0).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::activity::NewActivity;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody, StatusBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// A file the message points at (uploaded first through the chat uploads).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct Attachment {
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "mimeType", skip_serializing_if = "String::is_empty")]
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
}

fn is_zero(size: &i64) -> bool {
    *size <= 0
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NotifyBody {
    pub message: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// `POST /workspaces/{id}/notify`: announces `AGENT_MESSAGE` to the canvas and keeps the message
/// in the chat history (an `a2a_receive` row with method `notify`).
#[utoipa::path(post, path = "/workspaces/{id}/notify", tag = "a2a",
    params(("id" = Uuid, Path)), request_body = NotifyBody, responses(
    (status = 200, description = "Sent", body = StatusBody),
    (status = 400, description = "No message, or an attachment without uri or name", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown or removed workspace", body = ErrorBody),
    (status = 413, description = "Body too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn notify(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    body: Bytes,
) -> ApiResult<Json<StatusBody>> {
    let body: NotifyBody = parse_body(&body, "message is required")?;
    if body.message.is_empty() {
        return Err(ApiError::BadRequest("message is required".into()));
    }
    if let Some(index) = body
        .attachments
        .iter()
        .position(|a| a.uri.is_empty() || a.name.is_empty())
    {
        let message = format!("attachment[{index}]: uri and name are required");
        return Err(ApiError::BadRequest(message));
    }
    let target = super::proxy::cached_target(&state, workspace_id)
        .await
        .context("internal error")?
        .ok_or_else(ApiError::workspace_not_found)?;

    let mut event = json!({
        "message": body.message,
        "name": target.name,
        "workspace_id": workspace_id,
    });
    if !body.attachments.is_empty() {
        event["attachments"] = json!(body.attachments);
    }
    let summary = format!("Agent message: {}", truncate_chars(&body.message, 80));
    let response = crate::json::raw(&chat_record(&body));
    let row = NewActivity {
        workspace_id,
        activity_type: "a2a_receive",
        source_id: None,
        target_id: None,
        method: Some("notify"),
        summary: Some(&summary),
        request_body: None,
        response_body: Some(&response),
        duration_ms: None,
        status: "ok",
        error_detail: None,
        tool_trace: None,
    };
    let mut tx = state.db.begin().await.context("internal error")?;
    store::events::announce(
        &mut *tx,
        "AGENT_MESSAGE",
        workspace_id,
        &crate::json::raw(&event),
    )
    .await
    .context("internal error")?;
    store::activity::insert(&mut *tx, &row)
        .await
        .context("internal error")?;
    tx.commit().await.context("internal error")?;
    Ok(Json(StatusBody { status: "sent" }))
}

/// The row's `response_body`: the text, and the attachments as A2A file parts.
fn chat_record(body: &NotifyBody) -> Value {
    let mut record = json!({ "result": body.message });
    if !body.attachments.is_empty() {
        let parts: Vec<Value> = body
            .attachments
            .iter()
            .map(|file| json!({ "kind": "file", "file": file }))
            .collect();
        record["parts"] = Value::Array(parts);
    }
    record
}

/// The first `max` characters, then `…` when there were more.
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_80_characters() {
        assert_eq!(truncate_chars("short", 80), "short");
        let long = "é".repeat(81);
        assert_eq!(truncate_chars(&long, 80), format!("{}…", "é".repeat(80)));
    }
}
