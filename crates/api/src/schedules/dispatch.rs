//! The seam between the firing loop and whatever delivers a prompt to an agent: the A2A proxy
//! ([`ThroughProxy`], what a serving process uses), or [`ProxyUnavailable`] where none is wired.

use std::fmt::Debug;

use futures_util::future::BoxFuture;
use serde_json::Value;
use uuid::Uuid;

/// What came of delivering one cron prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// The agent (or the proxy's queue) answered with this status and body.
    Answered { status: u16, body: String },
    /// The delivery failed with this message (the proxy's `error`).
    Failed(String),
    /// Nothing could deliver it; the run is recorded as skipped with this reason.
    Unavailable(String),
}

/// Delivers a cron prompt, as an A2A `message/send` body, to a workspace's agent, the way the
/// original's scheduler called its proxy in-process (`internal/scheduler/scheduler.go:407-424`
/// at 624ef4d0): no caller id, activity logged by the proxy.
pub trait ScheduleDispatch: Debug + Send + Sync + 'static {
    fn dispatch(&self, workspace_id: Uuid, message: Value) -> BoxFuture<'static, DispatchOutcome>;
}

/// The reason recorded while no A2A proxy is wired in.
pub const PROXY_UNAVAILABLE: &str = "a2a proxy unavailable";

/// The dispatch of a server without an A2A proxy: every run is recorded as skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyUnavailable;

impl ScheduleDispatch for ProxyUnavailable {
    fn dispatch(&self, _: Uuid, _: Value) -> BoxFuture<'static, DispatchOutcome> {
        Box::pin(async { DispatchOutcome::Unavailable(PROXY_UNAVAILABLE.to_string()) })
    }
}

/// Delivers through the server's own A2A proxy, in-process, as the canvas class (the original's
/// `s.proxy.ProxyA2ARequest(ctx, workspaceID, body, "", true)`, `scheduler.go:419-421`): the
/// proxy's checks, busy queue, activity rows and `A2A_RESPONSE` event all apply. An answer of
/// any 2xx (a busy agent's 202 "queued" included) is [`DispatchOutcome::Answered`]; anything the
/// proxy answers with an error is [`DispatchOutcome::Failed`] with its `error` text, as the
/// original recorded its `proxyA2AError` (`a2a_proxy.go:147-155`).
#[derive(Clone)]
pub struct ThroughProxy {
    pub state: crate::AppState,
}

impl Debug for ThroughProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThroughProxy")
    }
}

/// The largest answer read back for the run's record (the proxy allows 1 MiB requests; answers
/// may be larger, only their emptiness matters here).
const ANSWER_LIMIT: usize = 16 * 1024 * 1024;

impl ScheduleDispatch for ThroughProxy {
    fn dispatch(&self, workspace_id: Uuid, message: Value) -> BoxFuture<'static, DispatchOutcome> {
        let state = self.state.clone();
        Box::pin(async move {
            let answered =
                crate::messaging::proxy::call_in_process(state, workspace_id, None, &message).await;
            let (ok, response) = match answered {
                Ok(response) => (true, response),
                Err(error) => (false, axum::response::IntoResponse::into_response(error)),
            };
            let status = response.status().as_u16();
            let body = match axum::body::to_bytes(response.into_body(), ANSWER_LIMIT).await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) if ok => {
                    return DispatchOutcome::Failed("failed to read agent response".into());
                }
                Err(_) => String::new(),
            };
            if ok && (200..300).contains(&status) {
                return DispatchOutcome::Answered { status, body };
            }
            let error = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "proxy a2a error".to_string());
            DispatchOutcome::Failed(error)
        })
    }
}

/// The A2A body of a cron prompt (`scheduler.go:407-418`).
pub fn cron_message(schedule_id: Uuid, prompt: &str) -> Value {
    let message_id = format!(
        "cron-{}-{}",
        &schedule_id.simple().to_string()[..8],
        &Uuid::new_v4().simple().to_string()[..8]
    );
    serde_json::json!({
        "method": "message/send",
        "params": {"message": {
            "role": "user",
            "messageId": message_id,
            "parts": [{"kind": "text", "text": prompt}],
        }},
    })
}
