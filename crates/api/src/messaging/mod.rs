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
pub mod recorder;
pub mod session_search;
pub mod stream;
pub mod uploads;
pub mod usage;
pub mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::ApiConfig;

/// The proxy's shared parts: one HTTP client (its connection pool), the per-workspace idle
/// windows agents declare on their heartbeats, the background writer of what calls leave
/// behind, and the tracker its follow-up tasks run on (the server's: joined at shutdown).
#[derive(Debug)]
pub struct Messaging {
    pub client: reqwest::Client,
    idle_overrides: Mutex<HashMap<Uuid, Duration>>,
    tasks: TaskTracker,
    pub recorder: recorder::Recorder,
    addresses: address::VerdictCache,
}

impl Default for Messaging {
    /// With a tracker of its own (tests that never shut a server down).
    fn default() -> Self {
        Self::new(TaskTracker::new())
    }
}

impl Messaging {
    /// Follow-up tasks run on `tasks`, which the server joins before closing the database.
    pub fn new(tasks: TaskTracker) -> Self {
        Self {
            client: agent::client(),
            idle_overrides: Mutex::new(HashMap::new()),
            tasks,
            recorder: recorder::Recorder::default(),
            addresses: address::VerdictCache::default(),
        }
    }

    /// Runs a follow-up of a call (a relayed stream, a queue drain) on the tracker.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// The tracker follow-ups run on.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Hands a record to the background writer ([`recorder`]).
    pub async fn record(&self, db: &sqlx::PgPool, record: recorder::Record) {
        self.recorder.record(db, &self.tasks, record).await;
    }

    /// Whether the proxy may call `url` under `policy`, remembered briefly per URL
    /// ([`address::VerdictCache`]).
    pub async fn allows_url(&self, policy: address::AddressPolicy, url: &str) -> bool {
        self.addresses.allows_url(policy, url).await
    }

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
