//! Approvals (`handlers/approvals.go` at 624ef4d0): an agent asks before an action, the canvas
//! polls the pending requests and decides. Creating and deciding record their events in
//! `structure_events`, from where the events hub broadcasts them on `/ws`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use store::approvals::NewApproval;
use uuid::Uuid;

use super::parse_object;
use super::types::{
    ApprovalCreated, ApprovalView, Decided, DecisionBody, NewApprovalBody, PendingApprovalView,
};
use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// A request still pending after this long is denied as `auto-expired` by the next poll of
/// `GET /approvals/pending` (the original's 10 minutes).
const PENDING_EXPIRY_SECONDS: f64 = 600.0;

/// Records a request, then announces `APPROVAL_REQUESTED` to the workspace and, when it has a
/// parent, `APPROVAL_ESCALATED` to the parent, all in one transaction.
#[utoipa::path(post, path = "/workspaces/{id}/approvals", tag = "approvals",
    params(("id" = uuid::Uuid, Path)), request_body = NewApprovalBody, responses(
    (status = 201, description = "Recorded, pending", body = ApprovalCreated),
    (status = 400, description = "Invalid id or body", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 500, description = "Insert failed", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ApprovalCreated>)> {
    const FAILED: &str = "failed to create approval";
    let invalid = || ApiError::BadRequest("invalid request body".to_string());
    let body: NewApprovalBody = parse_object(&body, "invalid request body")?.ok_or_else(invalid)?;
    let action = body
        .action
        .filter(|action| !action.is_empty())
        .ok_or_else(invalid)?;
    let task_id = body.task_id.unwrap_or_default();
    let reason = body.reason.unwrap_or_default();
    let context = body.context.map_or(Value::Null, Value::Object);
    let approval = NewApproval {
        workspace_id,
        task_id: &task_id,
        action: &action,
        reason: &reason,
        context: &context,
    };
    let mut tx = state.db.begin().await.map_err(ApiError::internal(FAILED))?;
    let created = store::approvals::create(&mut *tx, &approval)
        .await
        .map_err(ApiError::internal(FAILED))?;
    let requested = json!({
        "action": action,
        "approval_id": created.id,
        "reason": reason,
        "task_id": task_id,
    });
    store::events::record(
        &mut *tx,
        "APPROVAL_REQUESTED",
        Some(workspace_id),
        &requested,
    )
    .await
    .map_err(ApiError::internal(FAILED))?;
    if let Some(parent_id) = created.parent_id {
        let escalated = json!({
            "action": action,
            "approval_id": created.id,
            "from_workspace_id": workspace_id,
            "reason": reason,
        });
        store::events::record(&mut *tx, "APPROVAL_ESCALATED", Some(parent_id), &escalated)
            .await
            .map_err(ApiError::internal(FAILED))?;
    }
    tx.commit().await.map_err(ApiError::internal(FAILED))?;
    let answer = ApprovalCreated {
        approval_id: created.id,
        status: "pending",
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// The workspace's newest 50 requests of any status.
#[utoipa::path(get, path = "/workspaces/{id}/approvals", tag = "approvals",
    params(("id" = uuid::Uuid, Path)), responses(
    (status = 200, description = "Newest first", body = Vec<ApprovalView>),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
) -> ApiResult<Json<Vec<ApprovalView>>> {
    let rows = store::approvals::list_for_workspace(&state.db, workspace_id)
        .await
        .map_err(ApiError::internal("query failed"))?;
    let views = rows
        .into_iter()
        .map(|row| ApprovalView {
            action: row.action,
            created_at: row.created_at,
            decided_at: row.decided_at,
            decided_by: row.decided_by,
            id: row.id,
            reason: row.reason,
            status: row.status,
            task_id: row.task_id,
        })
        .collect();
    Ok(Json(views))
}

/// Decides a pending request and announces `APPROVAL_APPROVED` or `APPROVAL_DENIED`.
#[utoipa::path(post, path = "/workspaces/{id}/approvals/{approvalId}/decide", tag = "approvals",
    params(("id" = uuid::Uuid, Path), ("approvalId" = uuid::Uuid, Path)),
    request_body = DecisionBody, responses(
    (status = 200, description = "Decided", body = Decided),
    (status = 400, description = "Invalid id, body or decision", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "No such pending request", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    WorkspaceId(workspace_id): WorkspaceId,
    Path(path): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Decided>> {
    let approval_id = path.1;
    const FAILED: &str = "failed to update";
    let body: Option<DecisionBody> = parse_object(&body, "invalid request body")?;
    let body = body.unwrap_or_default();
    let decision = body.decision.unwrap_or_default();
    let event = match decision.as_str() {
        "" => return Err(ApiError::BadRequest("invalid request body".to_string())),
        "approved" => "APPROVAL_APPROVED",
        "denied" => "APPROVAL_DENIED",
        _ => {
            let message = "decision must be 'approved' or 'denied'";
            return Err(ApiError::BadRequest(message.to_string()));
        }
    };
    let not_found = || ApiError::NotFound("approval not found or already decided".to_string());
    // The original let PostgreSQL reject a malformed id (a 500); no such request exists.
    let approval_id = Uuid::parse_str(&approval_id).map_err(|_| not_found())?;
    let decided_by = body.decided_by.filter(|by| !by.is_empty());
    let decided_by = decided_by.as_deref().unwrap_or("human");
    let mut tx = state.db.begin().await.map_err(ApiError::internal(FAILED))?;
    let decided =
        store::approvals::decide(&mut *tx, workspace_id, approval_id, &decision, decided_by)
            .await
            .map_err(ApiError::internal(FAILED))?;
    if !decided {
        return Err(not_found());
    }
    let payload = json!({
        "approval_id": approval_id,
        "decided_by": decided_by,
        "decision": decision,
    });
    store::events::record(&mut *tx, event, Some(workspace_id), &payload)
        .await
        .map_err(ApiError::internal(FAILED))?;
    tx.commit().await.map_err(ApiError::internal(FAILED))?;
    Ok(Json(Decided {
        approval_id,
        status: decision,
    }))
}

/// Every workspace's pending requests, newest 50 first, for the canvas's approval banner. Each
/// poll first denies, as `auto-expired`, the requests pending for more than ten minutes.
#[utoipa::path(get, path = "/approvals/pending", tag = "approvals", responses(
    (status = 200, description = "Pending requests, newest first", body = Vec<PendingApprovalView>),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn pending(State(state): State<AppState>) -> ApiResult<Json<Vec<PendingApprovalView>>> {
    // A read on every poll; the write only when a request is due to expire.
    let (rows, due) = store::approvals::list_pending(&state.db, PENDING_EXPIRY_SECONDS)
        .await
        .map_err(ApiError::internal("query failed"))?;
    if due {
        store::approvals::expire_pending(&state.db, PENDING_EXPIRY_SECONDS)
            .await
            .map_err(ApiError::internal("query failed"))?;
    }
    let views = rows
        .into_iter()
        .map(|row| PendingApprovalView {
            action: row.action,
            created_at: row.created_at,
            id: row.id,
            reason: row.reason,
            status: row.status,
            workspace_id: row.workspace_id,
            workspace_name: row.workspace_name,
        })
        .collect();
    Ok(Json(views))
}
