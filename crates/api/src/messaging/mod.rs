//! Agent messaging: the A2A proxy (`proxy.rs`: who may call, `caller.rs`; JSON-RPC
//! normalisation, `payload.rs`; which addresses may be called, `address.rs`; the wire to the
//! agent, `agent.rs`; its timeouts, `watch.rs`; what a call records, `call.rs`; token usage,
//! `usage.rs`); agents' messages to the canvas (`notify.rs`); the chat history (`history.rs`); the busy queue (`queue.rs`); a workspace's live events as server-sent events (`stream.rs`); chat attachments
//! (`uploads.rs`); delegations and their ledger (`delegations.rs`); the session search
//! (`session_search.rs`).

pub mod address;
pub mod agent;
pub mod call;
pub mod caller;
pub mod delegations;
pub mod history;
pub mod notify;
pub mod payload;
pub mod proxy;
pub mod queue;
pub mod session_search;
pub mod stream;
pub mod uploads;
pub mod usage;
pub mod watch;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use crate::ApiConfig;

/// The proxy's shared parts: one HTTP client (its connection pool) and the per-workspace idle
/// windows agents declare on their heartbeats.
#[derive(Debug)]
pub struct Messaging {
    pub client: reqwest::Client,
    idle_overrides: Mutex<HashMap<Uuid, Duration>>,
}

impl Default for Messaging {
    fn default() -> Self {
        Self {
            client: agent::client(),
            idle_overrides: Mutex::new(HashMap::new()),
        }
    }
}

impl Messaging {
    /// The silence after which a call to `workspace` is abandoned: its own override, else the
    /// configured window.
    pub fn idle_window(&self, workspace: Uuid, config: &ApiConfig) -> Duration {
        let overrides = self
            .idle_overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        overrides
            .get(&workspace)
            .copied()
            .unwrap_or_else(|| config.a2a_idle_timeout())
    }

    /// `runtime_metadata.idle_timeout_seconds` of a heartbeat: positive sets, anything else clears.
    pub fn set_idle_override(&self, workspace: Uuid, seconds: Option<i64>) {
        let mut overrides = self
            .idle_overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match seconds.filter(|s| *s > 0) {
            Some(seconds) => overrides.insert(workspace, Duration::from_secs(seconds as u64)),
            None => overrides.remove(&workspace),
        };
    }
}
