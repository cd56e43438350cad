//! The seam between the firing loop and whatever delivers a prompt to an agent: the A2A proxy
//! once it is wired, [`ProxyUnavailable`] until then.

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
