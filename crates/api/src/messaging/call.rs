//! One call through the proxy after its checks: the activity rows it leaves, the `A2A_RESPONSE`
//! event, token usage, and the answers of its outcomes (`handlers/a2a_proxy_helpers.go` at
//! 624ef4d0).

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use store::activity::NewActivity;
use store::messaging::{NewQueueItem, ProxyTarget};
use uuid::Uuid;

use super::agent::Failure;
use super::payload::Normalised;
use super::proxy::{BusyQueued, answer_failure, bad_gateway, busy_body, error_body};
use super::recorder::{Activity, Record};
use crate::error::{ApiResult, StoreContext};
use crate::{ApiError, AppState};

/// A checked call to `target_id` on behalf of `caller` (`None`: the canvas class).
#[derive(Debug, Clone)]
pub struct Call {
    pub state: AppState,
    pub target_id: Uuid,
    pub target: ProxyTarget,
    pub caller: Option<Uuid>,
    pub request: Normalised,
}

impl Call {
    pub fn new(
        state: AppState,
        target_id: Uuid,
        target: ProxyTarget,
        caller: Option<Uuid>,
        request: Normalised,
    ) -> Self {
        Self {
            state,
            target_id,
            target,
            caller,
            request,
        }
    }

    /// The poll-mode agent finds the request in its activity (its inbox). Written before the
    /// caller is answered, so an accepted request is in the inbox, in the order it was accepted.
    pub async fn queue_for_poll(&self) -> ApiResult<()> {
        let summary = format!(
            "{} → {} (queued for poll)",
            self.request.method, self.target.name
        );
        let row = Row {
            summary,
            status: "ok",
            ..Row::default()
        };
        crate::agents::activity::log(&self.state.db, &self.activity(&row))
            .await
            .context("failed to queue for poll")?;
        Ok(())
    }

    /// The agent answered (any status) and its answer was read.
    pub async fn read(
        &self,
        status: StatusCode,
        answer: Bytes,
        duration: Duration,
    ) -> ApiResult<Response> {
        let parsed = Answer::parse(&answer);
        self.answered(status, parsed.as_ref(), duration).await;
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .and_then(|answer| answer.parsed.get("error"))
                .and_then(Value::as_str)
                .or(status.canonical_reason())
                .unwrap_or("agent error");
            return Err(ApiError::with_body(status, &error_body(message)));
        }
        if parsed.is_none() {
            return Err(bad_gateway("workspace agent returned invalid JSON"));
        }
        let mut response = (status, answer).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }

    /// Records an answer: its activity row, `A2A_RESPONSE` for the canvas, token usage, and the
    /// caller's last outbound call. Handed to the background writer ([`super::recorder`]): the
    /// caller is answered without waiting for the database.
    /// `answer` is `None` when it was not JSON (recorded as `null`, as an error).
    pub async fn answered(&self, status: StatusCode, answer: Option<&Answer>, duration: Duration) {
        let body = answer.map_or(&Value::Null, |answer| &answer.parsed);
        let text = answer.map_or(RawValue::NULL, |answer| &answer.text);
        let ok = status.as_u16() < 400 && !body.is_null();
        let tool_trace = body
            .pointer("/result/metadata/tool_trace")
            .map(crate::json::raw);
        let usage = super::usage::reported(body);
        let announced = (ok && self.caller.is_none()).then(|| {
            crate::json::raw(&Announced {
                duration_ms: duration.as_millis() as u64,
                method: &self.request.method,
                response_body: text,
            })
        });
        self.log(Row {
            summary: format!("{} → {}", self.request.method, self.target.name),
            status: if ok { "ok" } else { "error" },
            response_body: Some(text.to_owned()),
            tool_trace,
            duration: Some(duration),
            ..Row::default()
        })
        .await;
        if let Some(payload) = announced {
            self.record(Record::Announce {
                event_type: "A2A_RESPONSE",
                workspace_id: self.target_id,
                payload,
            })
            .await;
        }
        if let Some(usage) = usage {
            self.record(Record::Usage {
                workspace_id: self.target_id,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
            })
            .await;
        }
        if let (true, Some(caller)) = (ok, self.caller) {
            self.record(Record::Outbound(caller)).await;
        }
    }

    /// No answer came: the failure is logged, then answered.
    pub async fn failed(&self, failure: Failure, duration: Duration) -> ApiResult<Response> {
        self.log(Row {
            summary: format!(
                "A2A request to {} failed: {}",
                self.target.name,
                failure.text()
            ),
            status: "error",
            error_detail: Some(failure.text().to_string()),
            duration: Some(duration),
            ..Row::default()
        })
        .await;
        answer_failure(self, &failure).await
    }

    /// A busy agent's request waits in the queue (202), or the caller retries later (503).
    pub async fn queue_busy(&self) -> ApiResult<Response> {
        let item = NewQueueItem {
            workspace_id: self.target_id,
            caller_id: self.caller,
            body: &self.request.body,
            method: Some(self.request.method.as_str()).filter(|m| !m.is_empty()),
            idempotency_key: self.request.message_id(),
            expires_in_seconds: self.request.expires_in_seconds(),
        };
        match store::messaging::enqueue(&self.state.db, &item).await {
            Ok((queue_id, queue_depth)) => {
                let body = BusyQueued {
                    message: "workspace agent busy — request queued, will dispatch when capacity available",
                    queue_depth,
                    queue_id,
                    queued: true,
                };
                Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot queue a busy agent's request");
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(busy_body())).into_response();
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("30"));
                Ok(response)
            }
        }
    }

    /// Nothing listens at the agent's address: the workspace is offline until it heartbeats.
    pub async fn mark_unreachable(&self) {
        if self.target.runtime == "external" {
            return;
        }
        let db = &self.state.db;
        let marked = async {
            let mut tx = db.begin().await?;
            if store::messaging::mark_unreachable(&mut *tx, self.target_id).await? {
                let event = json!({});
                store::events::record(&mut *tx, "WORKSPACE_OFFLINE", Some(self.target_id), &event)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, store::StoreError>(())
        };
        if let Err(error) = marked.await {
            tracing::warn!(error = %error, "cannot mark an unreachable agent offline");
        }
        self.state
            .events
            .workspace_cache()
            .invalidate(self.target_id);
    }

    /// One `a2a_receive` row, written in the background (the answer does not wait for it).
    async fn log(&self, row: Row) {
        let activity = Activity {
            workspace_id: self.target_id,
            activity_type: "a2a_receive",
            source_id: self.caller,
            target_id: Some(self.target_id),
            method: Some(self.request.method.clone()),
            summary: Some(row.summary),
            request_body: Some(self.request.text.clone()),
            response_body: row.response_body,
            duration_ms: row
                .duration
                .map(|d| d.as_millis().min(i32::MAX as u128) as i32),
            status: row.status,
            error_detail: row.error_detail,
            tool_trace: row.tool_trace,
        };
        self.record(Record::Activity(activity)).await;
    }

    async fn record(&self, record: Record) {
        self.state.messaging.record(&self.state.db, record).await;
    }

    fn activity<'a>(&'a self, row: &'a Row) -> NewActivity<'a> {
        NewActivity {
            workspace_id: self.target_id,
            activity_type: "a2a_receive",
            source_id: self.caller,
            target_id: Some(self.target_id),
            method: Some(self.request.method.as_str()),
            summary: Some(row.summary.as_str()),
            request_body: Some(&self.request.text),
            response_body: row.response_body.as_deref(),
            duration_ms: row
                .duration
                .map(|d| d.as_millis().min(i32::MAX as u128) as i32),
            status: row.status,
            error_detail: row.error_detail.as_deref(),
            tool_trace: row.tool_trace.as_deref(),
        }
    }
}

/// What differs between the proxy's activity rows.
#[derive(Debug, Default)]
struct Row {
    summary: String,
    status: &'static str,
    response_body: Option<Box<RawValue>>,
    tool_trace: Option<Box<RawValue>>,
    duration: Option<Duration>,
    error_detail: Option<String>,
}

/// An agent's JSON answer: parsed, for what the proxy reads from it, and its text as sent, for
/// what is logged and announced.
#[derive(Debug)]
pub struct Answer {
    pub parsed: Value,
    pub text: Box<RawValue>,
}

impl Answer {
    /// `None` when `bytes` is not JSON.
    pub fn parse(bytes: &[u8]) -> Option<Answer> {
        let text: Box<RawValue> = serde_json::from_slice(bytes).ok()?;
        let parsed = serde_json::from_str(text.get()).ok()?;
        Some(Answer { parsed, text })
    }

    pub fn of(parsed: Value) -> Answer {
        let text = crate::json::raw(&parsed);
        Answer { parsed, text }
    }
}

/// The `A2A_RESPONSE` payload.
#[derive(Serialize)]
struct Announced<'a> {
    duration_ms: u64,
    method: &'a str,
    response_body: &'a RawValue,
}
