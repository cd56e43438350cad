//! `POST /admin/workspaces/{id}/bootstrap-failed` (`workspace_bootstrap.go:19-96` at 624ef4d0):
//! the instance's bootstrap watcher reports a failed boot.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::json;

use super::{BootstrapAck, BootstrapFailure};
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::provisioner::flow;
use crate::{ApiError, AppState};

/// Longest log tail kept, and longest stored error.
const CAP: usize = 8192;

/// `POST /admin/workspaces/{id}/bootstrap-failed`: a provisioning workspace becomes `failed`
/// with the message and log tail; any other status is left alone (`no_change`).
#[utoipa::path(post, path = "/admin/workspaces/{id}/bootstrap-failed", tag = "lifecycle",
    params(("id" = Uuid, Path)), request_body = BootstrapFailure, responses(
    (status = 200, description = "Recorded (or no change)", body = BootstrapAck),
    (status = 400, description = "Invalid body or id", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 500, description = "Update failed", body = ErrorBody)))]
pub async fn bootstrap_failed(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> Result<Json<BootstrapAck>, ApiError> {
    let report: BootstrapFailure = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("invalid request body".into()))?;
    let tail = truncate_tail(&report.log_tail);
    let error = match report.error.trim() {
        "" => "bootstrap failed — see log_tail".to_string(),
        _ => report.error,
    };
    let stored = cut_utf8(&format!("{error}\n\n{tail}"), CAP).to_string();
    let payload = json!({ "error": error, "log_tail": tail, "source": "bootstrap_watcher" });
    let changed = flow::mark_failed(&state, id, &stored, true, &payload)
        .await
        .context("db update failed")?;
    Ok(Json(BootstrapAck {
        no_change: (!changed).then_some(true),
        ok: true,
    }))
}

/// The last 8192 bytes of a longer tail, marked.
fn truncate_tail(tail: &str) -> String {
    if tail.len() <= CAP {
        return tail.to_string();
    }
    let mut start = tail.len() - CAP;
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    format!("...(truncated)...\n{}", &tail[start..])
}

/// At most `cap` bytes of `text`, cut on a character boundary.
fn cut_utf8(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::{cut_utf8, truncate_tail};

    #[test]
    fn long_tails_keep_their_end() {
        let tail = "x".repeat(9000);
        let kept = truncate_tail(&tail);
        assert!(kept.starts_with("...(truncated)...\n"));
        assert_eq!(kept.len(), "...(truncated)...\n".len() + 8192);
        assert_eq!(cut_utf8("héllo", 2), "h");
    }
}
