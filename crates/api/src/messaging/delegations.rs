//! Delegations: one workspace hands a task to another through the proxy and follows it (the
//! original's `handlers/delegation.go`, `delegation_ledger*.go`, `admin_delegations.go` at
//! 624ef4d0). The source's activity log keeps the rows agents read back
//! (`GET /workspaces/{id}/delegations`); the ledger `delegations` is what operators list and the
//! sweeper (`crate::background::delegation_sweeper`) fails when stale.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::activity::NewActivity;
use store::delegations::{NewDelegationRow, NewLedgerEntry};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::call::Call;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::json::{format_go_time, parse_body};
use crate::{ApiError, AppState};

/// The wait before the one retry of a delegation whose target was unreachable or restarting.
const RETRY_AFTER: Duration = Duration::from_secs(8);

/// `TruncateBytes` (`internal/textutil/truncate.go:58-72`): at most `max` bytes, cut on a
/// character boundary, ending in `…` when cut.
pub fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `TruncateBytesNoMarker`: at most `max` bytes, cut on a character boundary.
pub fn truncate_bytes_no_marker(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DelegateBody {
    pub target_id: String,
    pub task: String,
    #[serde(default)]
    pub idempotency_key: String,
}

/// 202 (a new delegation) or 200 (`idempotent_hit`: the key's earlier delegation).
#[derive(Debug, Serialize, ToSchema)]
pub struct Delegated {
    pub delegation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_hit: Option<bool>,
    pub status: String,
    pub target_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
}

fn task_request(delegation_id: &str, task: &str) -> Value {
    json!({"method": "message/send", "params": {"message": {
        "role": "user", "messageId": delegation_id,
        "parts": [{"type": "text", "text": task}],
        "metadata": {"delegation_id": delegation_id}}}})
}

fn target_uuid(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("target_id must be a valid UUID".into()))
}

/// `POST /workspaces/{id}/delegate`: sends `task` to `target_id` in the background and answers
/// at once (`delegation.go:109-197`).
#[utoipa::path(post, path = "/workspaces/{id}/delegate", tag = "delegations",
    params(("id" = Uuid, Path)), request_body = DelegateBody, responses(
    (status = 200, description = "The idempotency key's earlier delegation", body = Delegated),
    (status = 202, description = "Delegated", body = Delegated),
    (status = 400, description = "Invalid body or target, or self-delegation", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 413, description = "Body too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn delegate(
    State(state): State<AppState>,
    WorkspaceId(source): WorkspaceId,
    body: Bytes,
) -> ApiResult<Response> {
    let body: DelegateBody = parse_body(&body, "invalid delegation request")?;
    if body.target_id.is_empty() || body.task.is_empty() {
        return Err(ApiError::BadRequest("invalid delegation request".into()));
    }
    let target = target_uuid(&body.target_id)?;
    if target == source {
        return Err(ApiError::BadRequest("self-delegation not permitted".into()));
    }
    let key = (!body.idempotency_key.is_empty()).then_some(body.idempotency_key.as_str());
    if let Some(key) = key {
        match store::delegations::by_idempotency_key(&state.db, source, key).await {
            Ok(Some(found)) if found.status != "failed" && found.delegation_id.is_some() => {
                let hit = Delegated {
                    delegation_id: found.delegation_id.unwrap_or_default(),
                    idempotent_hit: Some(true),
                    status: found.status,
                    target_id: found.target_id.map(|t| t.to_string()).unwrap_or_default(),
                    warning: None,
                };
                return Ok(Json(hit).into_response());
            }
            Ok(Some(_)) => {
                if let Err(error) =
                    store::delegations::delete_failed_with_key(&state.db, source, key).await
                {
                    tracing::warn!(error = %error, "cannot clear a failed delegation's key");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(error = %error, "idempotency lookup failed"),
        }
    }
    let delegation_id = Uuid::new_v4().to_string();
    let request = json!({"delegation_id": delegation_id, "task": body.task});
    let summary = format!("Delegating to {target}");
    let row = NewDelegationRow::delegate(source, target, &summary, &request, "pending", key);
    let mut warning = None;
    if let Err(error) = store::delegations::insert_row(&state.db, &row).await {
        // A concurrent request with the same key won the race: answer with its delegation.
        if let Some(key) = key
            && let Ok(Some(found)) =
                store::delegations::by_idempotency_key(&state.db, source, key).await
            && let Some(existing) = found.delegation_id
        {
            let hit = Delegated {
                delegation_id: existing,
                idempotent_hit: Some(true),
                status: found.status,
                target_id: target.to_string(),
                warning: None,
            };
            return Ok(Json(hit).into_response());
        }
        tracing::warn!(error = %error, "cannot record a delegation");
        warning = Some("delegation dispatched but status tracking unavailable");
    }
    let entry = NewLedgerEntry {
        delegation_id: &delegation_id,
        caller_id: source,
        callee_id: target,
        task_preview: truncate_bytes_no_marker(&body.task, store::delegations::TASK_PREVIEW_BYTES),
        idempotency_key: key,
    };
    if let Err(error) = store::delegations::ledger_insert(&state.db, &entry).await {
        tracing::warn!(error = %error, "cannot add a delegation to the ledger");
    }
    tokio::spawn(execute(
        state.clone(),
        source,
        target,
        delegation_id.clone(),
        task_request(&delegation_id, &body.task),
    ));
    record_event(
        &state,
        "DELEGATION_SENT",
        source,
        json!({"delegation_id": delegation_id, "target_id": target,
               "task_preview": truncate_bytes(&body.task, 100)}),
    )
    .await;
    let answer = Delegated {
        delegation_id,
        idempotent_hit: None,
        status: "delegated".into(),
        target_id: target.to_string(),
        warning,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Records an event on the source (the original's `RecordAndBroadcast`); failures are logged.
async fn record_event(state: &AppState, event: &str, source: Uuid, payload: Value) {
    if let Err(error) = store::events::record(&state.db, event, Some(source), &payload).await {
        tracing::warn!(error = %error, event, "cannot record a delegation event");
    }
}

async fn set_status(state: &AppState, source: Uuid, id: &str, status: &str, error: &str) {
    if let Err(e) = store::delegations::set_row_status(&state.db, source, id, status, error).await {
        tracing::warn!(error = %e, delegation_id = id, "cannot update a delegation row");
    }
}

async fn ledger(state: &AppState, id: &str, status: &str, error: &str, preview: &str) {
    // A move the ledger does not allow is ignored, as in the original.
    if let Err(e) =
        store::delegations::ledger_set_status(&state.db, id, status, error, preview).await
    {
        tracing::warn!(error = %e, delegation_id = id, "cannot update the delegation ledger");
    }
}

async fn insert_result(state: &AppState, row: NewDelegationRow<'_>) {
    if let Err(error) = store::delegations::insert_row(&state.db, &row).await {
        tracing::warn!(error = %error, "cannot record a delegation result");
    }
}

/// With `DELEGATION_RESULT_INBOX_PUSH=1`, the outcome also lands in the source's inbox: an
/// `a2a_receive` row a poll-mode agent reads with its activity cursor (the original's
/// `pushDelegationResultToInbox`, `handlers/delegation.go:34-78` at 624ef4d0). A failed write is
/// logged; the delegation's own outcome stands.
/// `outcome` is the answer's text, or the failure's message.
async fn push_to_inbox(state: &AppState, source: Uuid, id: &str, outcome: Result<&str, &str>) {
    if !state.config.delegation_result_inbox_push {
        return;
    }
    let (summary, status, text, error) = match outcome {
        Ok(text) => ("Delegation result delivered", "ok", text, ""),
        Err(error) => ("Delegation failed", "error", "", error),
    };
    let request = crate::json::raw(&json!({"delegation_id": id}));
    let response = crate::json::raw(&json!({"delegation_id": id, "text": text}));
    let row = NewActivity {
        workspace_id: source,
        activity_type: "a2a_receive",
        source_id: Some(source),
        target_id: None,
        method: Some("delegate_result"),
        summary: Some(summary),
        request_body: Some(&request),
        response_body: Some(&response),
        duration_ms: None,
        status,
        error_detail: (!error.is_empty()).then_some(error),
        tool_trace: None,
    };
    if let Err(e) = store::activity::insert(&state.db, &row).await {
        tracing::warn!(error = %e, delegation_id = id, "cannot push a delegation result to the inbox");
    }
}

/// How the proxy answered a delegated task.
enum Outcome {
    Failed(String),
    Queued,
    Answered(String),
}

/// The background half of a delegation (`delegation.go:302-431`): the task goes through the
/// proxy as a call from the source; the outcome is recorded on the source.
async fn execute(state: AppState, source: Uuid, target: Uuid, id: String, request: Value) {
    set_status(&state, source, &id, "dispatched", "").await;
    ledger(&state, &id, "dispatched", "", "").await;
    record_event(
        &state,
        "DELEGATION_STATUS",
        source,
        json!({"delegation_id": id, "status": "dispatched", "target_id": target}),
    )
    .await;
    let mut outcome = call(&state, source, target, &request).await;
    if let Err((_, true)) = &outcome {
        tokio::time::sleep(RETRY_AFTER).await;
        outcome = call(&state, source, target, &request).await;
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err((message, _)) => Outcome::Failed(message),
    };
    match outcome {
        Outcome::Failed(message) => {
            set_status(&state, source, &id, "failed", &message).await;
            ledger(&state, &id, "failed", &message, "").await;
            let row = NewDelegationRow::result(
                source,
                Some(target),
                "Delegation failed",
                None,
                "failed",
                Some(&message),
            );
            insert_result(&state, row).await;
            let event = json!({"delegation_id": id, "error": message, "target_id": target});
            record_event(&state, "DELEGATION_FAILED", source, event).await;
            push_to_inbox(&state, source, &id, Err(&message)).await;
        }
        Outcome::Queued => {
            set_status(&state, source, &id, "queued", "").await;
            let response = json!({"delegation_id": id, "queued": true});
            let row = NewDelegationRow::result(
                source,
                Some(target),
                "Delegation queued — target at capacity",
                Some(&response),
                "queued",
                None,
            );
            insert_result(&state, row).await;
            let event = json!({"delegation_id": id, "status": "queued", "target_id": target});
            record_event(&state, "DELEGATION_STATUS", source, event).await;
        }
        Outcome::Answered(text) => {
            let summary = format!("Delegation completed ({})", truncate_bytes(&text, 80));
            let response = json!({"delegation_id": id, "text": text});
            let row = NewDelegationRow::result(
                source,
                Some(target),
                &summary,
                Some(&response),
                "completed",
                None,
            );
            insert_result(&state, row).await;
            let preview = truncate_bytes(&text, 200);
            ledger(&state, &id, "completed", "", &preview).await;
            set_status(&state, source, &id, "completed", "").await;
            let event =
                json!({"delegation_id": id, "response_preview": preview, "target_id": target});
            record_event(&state, "DELEGATION_COMPLETE", source, event).await;
            push_to_inbox(&state, source, &id, Ok(&text)).await;
        }
    }
}

/// One call through the proxy; `Err((message, retry))` when it failed, `retry` for a 502 or a
/// restarting 503 (`delegation.go:643-672`).
async fn call(
    state: &AppState,
    source: Uuid,
    target: Uuid,
    request: &Value,
) -> Result<Outcome, (String, bool)> {
    let failed = |error: ApiError| {
        let status = error.status();
        let (message, restarting) = match &error {
            ApiError::WithBody { body, .. } => (
                body["error"]
                    .as_str()
                    .unwrap_or("proxy a2a error")
                    .to_string(),
                body["restarting"] == json!(true),
            ),
            other => (other.to_string(), false),
        };
        let retry = status == StatusCode::BAD_GATEWAY
            || (status == StatusCode::SERVICE_UNAVAILABLE && restarting);
        (message, retry)
    };
    let found = super::proxy::cached_target(state, target)
        .await
        .context("lookup failed")
        .and_then(|t| t.ok_or_else(ApiError::workspace_not_found));
    let target_row = found.map_err(failed)?;
    super::caller::check_hierarchy(state, Some(source), target)
        .await
        .map_err(failed)?;
    let normalised = super::payload::normalise(request.to_string().as_bytes()).map_err(failed)?;
    let call = Call::new(state.clone(), target, target_row, Some(source), normalised);
    let total = state.config.a2a_total_timeout();
    let answer = super::proxy::deliver(call, total, Instant::now())
        .await
        .map_err(failed)?;
    let status = answer.status();
    let body = axum::body::to_bytes(answer.into_body(), super::agent::MAX_ANSWER_BYTES)
        .await
        .map_err(|error| (error.to_string(), false))?;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status == StatusCode::ACCEPTED && parsed["queued"] == json!(true) {
        return Ok(Outcome::Queued);
    }
    if !status.is_success() {
        let message = parsed["error"].as_str().unwrap_or("proxy a2a error");
        return Err((message.to_string(), status == StatusCode::BAD_GATEWAY));
    }
    Ok(Outcome::Answered(response_text(&body)))
}

/// The answer's text (`delegation.go:689-729`): the first `kind: text` part of `result.parts`,
/// else of `result.artifacts[].parts`; otherwise the raw body.
pub fn response_text(body: &[u8]) -> String {
    let raw = || String::from_utf8_lossy(body).into_owned();
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return raw();
    };
    let Some(result) = parsed.get("result").filter(|r| r.is_object()) else {
        return raw();
    };
    let first_text = |parts: &Value| {
        parts.as_array().and_then(|parts| {
            parts
                .iter()
                .find(|p| p["kind"] == "text")
                .and_then(|p| p["text"].as_str())
                .map(str::to_string)
        })
    };
    if let Some(text) = first_text(&result["parts"]) {
        return text;
    }
    if let Some(artifacts) = result["artifacts"].as_array() {
        for artifact in artifacts {
            if let Some(text) = first_text(&artifact["parts"]) {
                return text;
            }
        }
    }
    raw()
}

/// One row of `GET /workspaces/{id}/delegations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DelegationItem {
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_preview: Option<String>,
    pub source_id: String,
    pub status: String,
    pub summary: String,
    pub target_id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// `GET /workspaces/{id}/delegations`: the source's 50 newest delegation rows
/// (`delegation.go:584-639`).
#[utoipa::path(get, path = "/workspaces/{id}/delegations", tag = "delegations",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "Newest first", body = Vec<DelegationItem>),
    (status = 400, description = "Invalid workspace id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    WorkspaceId(source): WorkspaceId,
) -> ApiResult<Json<Vec<DelegationItem>>> {
    let rows = store::delegations::list_rows(&state.db, source)
        .await
        .context("query failed")?;
    let items = rows
        .into_iter()
        .map(|row| {
            let text = |body: &Option<Value>, key: &str| {
                body.as_ref()
                    .and_then(|b| b[key].as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            let delegation_id = text(&row.request_body, "delegation_id")
                .or_else(|| text(&row.response_body, "delegation_id"));
            let response_preview = row.response_body.as_ref().and_then(|body| {
                let full = match body["text"].as_str() {
                    Some(text) => text.to_string(),
                    None => body.to_string(),
                };
                non_empty(Some(truncate_bytes(&full, 300)))
            });
            DelegationItem {
                created_at: format_go_time(&row.created_at),
                delegation_id,
                error: non_empty(row.error_detail),
                id: row.id.to_string(),
                response_preview,
                source_id: row.source_id.map(|s| s.to_string()).unwrap_or_default(),
                status: row.status.unwrap_or_default(),
                summary: row.summary.unwrap_or_default(),
                target_id: row.target_id.map(|s| s.to_string()).unwrap_or_default(),
                kind: row.activity_type,
            }
        })
        .collect();
    Ok(Json(items))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordBody {
    pub target_id: String,
    pub task: String,
    pub delegation_id: String,
}

/// 202 of a recorded delegation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    pub delegation_id: String,
    pub status: &'static str,
}

/// `POST /workspaces/{id}/delegations/record`: a delegation the agent sent itself
/// (`delegation.go:455-517`).
#[utoipa::path(post, path = "/workspaces/{id}/delegations/record", tag = "delegations",
    params(("id" = Uuid, Path)), request_body = RecordBody, responses(
    (status = 202, description = "Recorded", body = Recorded),
    (status = 400, description = "Invalid body or target", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 413, description = "Body too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    WorkspaceId(source): WorkspaceId,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Recorded>)> {
    let body: RecordBody = parse_body(&body, "invalid request body")?;
    if body.target_id.is_empty() || body.task.is_empty() || body.delegation_id.is_empty() {
        return Err(ApiError::BadRequest("invalid request body".into()));
    }
    let target = target_uuid(&body.target_id)?;
    let request = json!({"delegation_id": body.delegation_id, "task": body.task});
    let summary = format!("Delegating to {target}");
    let row = NewDelegationRow::delegate(source, target, &summary, &request, "dispatched", None);
    store::delegations::insert_row(&state.db, &row)
        .await
        .context("failed to record delegation")?;
    let entry = NewLedgerEntry {
        delegation_id: &body.delegation_id,
        caller_id: source,
        callee_id: target,
        task_preview: truncate_bytes_no_marker(&body.task, store::delegations::TASK_PREVIEW_BYTES),
        idempotency_key: None,
    };
    if let Err(error) = store::delegations::ledger_insert(&state.db, &entry).await {
        tracing::warn!(error = %error, "cannot add a delegation to the ledger");
    }
    ledger(&state, &body.delegation_id, "dispatched", "", "").await;
    record_event(
        &state,
        "DELEGATION_SENT",
        source,
        json!({"delegation_id": body.delegation_id, "target_id": target,
               "task_preview": truncate_bytes(&body.task, 100)}),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(Recorded {
            delegation_id: body.delegation_id,
            status: "recorded",
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateBody {
    pub status: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub response_preview: String,
}

/// 200 of an update.
#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    pub delegation_id: String,
    pub status: String,
}

/// `POST /workspaces/{id}/delegations/{delegation_id}/update`: the agent reports how a
/// delegation it recorded ended (`delegation.go:519-582`).
#[utoipa::path(post, path = "/workspaces/{id}/delegations/{delegation_id}/update", tag = "delegations",
    params(("id" = Uuid, Path), ("delegation_id" = String, Path)), request_body = UpdateBody,
    responses(
    (status = 200, description = "Updated", body = Updated),
    (status = 400, description = "Invalid body, or a status other than completed or failed", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 413, description = "Body too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    WorkspaceId(source): WorkspaceId,
    Path(ids): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Updated>> {
    let delegation_id = ids.1;
    let body: UpdateBody = parse_body(&body, "invalid request body")?;
    if body.status.is_empty() {
        return Err(ApiError::BadRequest("invalid request body".into()));
    }
    let id = delegation_id.as_str();
    match body.status.as_str() {
        "completed" => {
            ledger(&state, id, "completed", "", &body.response_preview).await;
            set_status(&state, source, id, "completed", "").await;
            let summary = format!(
                "Delegation completed ({})",
                truncate_bytes(&body.response_preview, 80)
            );
            let response = json!({"delegation_id": id, "text": body.response_preview});
            let row = NewDelegationRow::result(
                source,
                None,
                &summary,
                Some(&response),
                "completed",
                None,
            );
            store::delegations::insert_row(&state.db, &row)
                .await
                .context("failed to record delegation")?;
            let event = json!({"delegation_id": id,
                               "response_preview": truncate_bytes(&body.response_preview, 200)});
            record_event(&state, "DELEGATION_COMPLETE", source, event).await;
            push_to_inbox(&state, source, id, Ok(&body.response_preview)).await;
        }
        "failed" => {
            ledger(&state, id, "failed", &body.error, "").await;
            set_status(&state, source, id, "failed", &body.error).await;
            let event = json!({"delegation_id": id, "error": body.error});
            record_event(&state, "DELEGATION_FAILED", source, event).await;
            push_to_inbox(&state, source, id, Err(&body.error)).await;
        }
        _ => {
            return Err(ApiError::BadRequest(
                "status must be 'completed' or 'failed'".into(),
            ));
        }
    }
    Ok(Json(Updated {
        delegation_id,
        status: body.status,
    }))
}

/// The statuses an operator may list.
const FILTERS: [&str; 4] = ["in_flight", "stuck", "failed", "completed"];

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminListQuery {
    /// `in_flight` (default: queued, dispatched, in_progress), `stuck`, `failed` or `completed`.
    #[serde(default)]
    status: Option<String>,
    /// 1 to 1000 (default 100).
    #[serde(default)]
    limit: Option<String>,
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerItem {
    pub callee_id: Uuid,
    pub caller_id: Uuid,
    pub created_at: String,
    pub deadline: String,
    pub delegation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_preview: Option<String>,
    pub retry_count: i32,
    pub status: String,
    pub task_preview: String,
    pub updated_at: String,
}

/// 200 of the operators' list.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerList {
    pub count: usize,
    pub delegations: Vec<LedgerItem>,
    pub limit: i64,
    pub status: String,
}

/// 400 of an unknown status filter (`allowed`, `requested_status`) or a limit out of range
/// (`requested`).
#[derive(Debug, Serialize, ToSchema)]
pub struct FilterRefused {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<&'static str>>,
    pub error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_status: Option<String>,
}

/// `GET /admin/delegations`: the ledger, newest first (`admin_delegations.go:100-192`).
#[utoipa::path(get, path = "/admin/delegations", tag = "delegations",
    params(AdminListQuery), responses(
    (status = 200, description = "Ledger entries", body = LedgerList),
    (status = 400, description = "Unknown status filter, or a limit out of range", body = FilterRefused),
    (status = 401, description = "Not an operator", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn admin_list(
    State(state): State<AppState>,
    Query(query): Query<AdminListQuery>,
) -> ApiResult<Json<LedgerList>> {
    let filter = query
        .status
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "in_flight".to_string());
    let statuses: &[&str] = match filter.as_str() {
        "in_flight" => &["queued", "dispatched", "in_progress"],
        "stuck" => &["stuck"],
        "failed" => &["failed"],
        "completed" => &["completed"],
        _ => {
            let body = FilterRefused {
                allowed: Some(FILTERS.to_vec()),
                error: "unknown status filter",
                requested: None,
                requested_status: Some(filter),
            };
            return Err(ApiError::with_body(StatusCode::BAD_REQUEST, &body));
        }
    };
    let limit = match query.limit.filter(|l| !l.is_empty()) {
        None => 100,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                let body = FilterRefused {
                    allowed: None,
                    error: "limit must be 1..1000",
                    requested: Some(raw),
                    requested_status: None,
                };
                return Err(ApiError::with_body(StatusCode::BAD_REQUEST, &body));
            }
        },
    };
    let rows = store::delegations::ledger_list(&state.db, statuses, limit)
        .await
        .context("query failed")?;
    let delegations: Vec<LedgerItem> = rows
        .into_iter()
        .map(|row| LedgerItem {
            callee_id: row.callee_id,
            caller_id: row.caller_id,
            created_at: format_go_time(&row.created_at),
            deadline: format_go_time(&row.deadline),
            delegation_id: row.delegation_id,
            error_detail: row.error_detail,
            last_heartbeat: row.last_heartbeat.as_ref().map(format_go_time),
            result_preview: row.result_preview,
            retry_count: row.retry_count,
            status: row.status,
            task_preview: row.task_preview,
            updated_at: format_go_time(&row.updated_at),
        })
        .collect();
    Ok(Json(LedgerList {
        count: delegations.len(),
        delegations,
        limit,
        status: filter,
    }))
}

/// `GET /admin/delegations/stats`: how many ledger entries of each status
/// (`admin_delegations.go:200-236`).
#[utoipa::path(get, path = "/admin/delegations/stats", tag = "delegations",
    responses(
    (status = 200, description = "Counts per status (every status present, 0 when none)", body = std::collections::BTreeMap<String, i64>),
    (status = 401, description = "Not an operator", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn admin_stats(
    State(state): State<AppState>,
) -> ApiResult<Json<std::collections::BTreeMap<String, i64>>> {
    let mut counts: std::collections::BTreeMap<String, i64> = [
        "queued",
        "dispatched",
        "in_progress",
        "completed",
        "failed",
        "stuck",
    ]
    .into_iter()
    .map(|s| (s.to_string(), 0))
    .collect();
    let rows = store::delegations::ledger_stats(&state.db)
        .await
        .context("query failed")?;
    counts.extend(rows);
    Ok(Json(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_bytes("short", 80), "short");
        let cut = truncate_bytes(&"é".repeat(100), 80);
        assert!(cut.len() <= 80 && cut.ends_with('…'), "{cut}");
        assert_eq!(truncate_bytes_no_marker("ééé", 5), "éé");
    }

    #[test]
    fn the_answer_text_is_the_first_text_part() {
        let body = br#"{"result":{"parts":[{"kind":"data"},{"kind":"text","text":"hi"}]}}"#;
        assert_eq!(response_text(body), "hi");
        let body = br#"{"result":{"artifacts":[{"parts":[{"kind":"text","text":"art"}]}]}}"#;
        assert_eq!(response_text(body), "art");
        assert_eq!(response_text(b"plain"), "plain");
    }
}
