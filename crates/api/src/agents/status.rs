//! How a heartbeat moves a workspace between statuses (the original's `evaluateStatus`).

use serde_json::{Value, json};
use store::workspaces::WorkspaceStatus;

/// An error rate at or above this turns an online workspace degraded.
pub const DEGRADED_ERROR_RATE: f64 = 0.5;
/// A degraded workspace recovers once its error rate falls below this.
pub const RECOVERED_ERROR_RATE: f64 = 0.1;
/// The only `runtime_state` an agent reports today: alive, but its runtime is stuck.
pub const WEDGED: &str = "wedged";

/// What a heartbeat says about the agent's health.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health<'a> {
    pub error_rate: f64,
    pub sample_error: &'a str,
    /// `""` when healthy.
    pub runtime_state: &'a str,
}

/// A status change and the event that records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: WorkspaceStatus,
    pub to: WorkspaceStatus,
    pub event: &'static str,
    pub payload: Value,
}

/// The transition a heartbeat causes from `status`, if any.
pub fn after_heartbeat(status: WorkspaceStatus, health: Health<'_>) -> Option<Transition> {
    use WorkspaceStatus::{AwaitingAgent, Degraded, Offline, Online, Provisioning};
    let to_online = |payload: Value| Transition {
        from: status,
        to: Online,
        event: "WORKSPACE_ONLINE",
        payload,
    };
    let to_degraded = |payload: Value| Transition {
        from: status,
        to: Degraded,
        event: "WORKSPACE_DEGRADED",
        payload,
    };
    match status {
        Online if health.runtime_state == WEDGED => Some(to_degraded(
            json!({ "runtime_state": WEDGED, "sample_error": health.sample_error }),
        )),
        Online if health.error_rate >= DEGRADED_ERROR_RATE => Some(to_degraded(json!({
            "error_rate": go_number(health.error_rate),
            "sample_error": health.sample_error,
        }))),
        Degraded if health.error_rate < RECOVERED_ERROR_RATE && health.runtime_state.is_empty() => {
            Some(to_online(json!({})))
        }
        Offline => Some(to_online(json!({}))),
        // An agent that heartbeats has started, whether or not it registered first.
        Provisioning | AwaitingAgent => {
            Some(to_online(json!({ "recovered_from": status.as_str() })))
        }
        _ => None,
    }
}

/// A float as Go's encoding/json writes it (`1`, not `1.0`).
pub fn go_number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(error_rate: f64, runtime_state: &'static str) -> Health<'static> {
        Health {
            error_rate,
            sample_error: "boom",
            runtime_state,
        }
    }

    fn target(status: &str, h: Health<'_>) -> Option<&'static str> {
        after_heartbeat(WorkspaceStatus::from_column(status), h).map(|t| t.to.as_str())
    }

    #[test]
    fn error_rate_thresholds_follow_the_original() {
        assert_eq!(target("online", health(0.49, "")), None);
        assert_eq!(target("online", health(0.5, "")), Some("degraded"));
        assert_eq!(target("degraded", health(0.1, "")), None);
        assert_eq!(target("degraded", health(0.09, "")), Some("online"));
        assert_eq!(target("degraded", health(0.0, WEDGED)), None);
        assert_eq!(target("online", health(0.0, WEDGED)), Some("degraded"));
    }

    #[test]
    fn heartbeats_bring_starting_and_offline_workspaces_online() {
        for status in ["offline", "provisioning", "awaiting_agent"] {
            assert_eq!(target(status, health(0.9, "")), Some("online"), "{status}");
        }
        for status in ["removed", "paused", "hibernated", "failed"] {
            assert_eq!(target(status, health(0.0, "")), None, "{status}");
        }
    }

    #[test]
    fn degraded_payload_prints_rates_like_go() {
        let t = after_heartbeat(WorkspaceStatus::Online, health(1.0, "")).unwrap();
        assert_eq!(
            t.payload.to_string(),
            r#"{"error_rate":1,"sample_error":"boom"}"#
        );
        let t = after_heartbeat(WorkspaceStatus::Online, health(0.8, "")).unwrap();
        assert_eq!(t.payload["error_rate"], json!(0.8));
    }
}
