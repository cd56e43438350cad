//! The provisioner seam: who launches a workspace's machine. [`Provisioner`] is the trait,
//! [`control_plane::ControlPlane`] its one implementation (the SaaS control plane's HTTP API),
//! chosen when `MOLECULE_ORG_ID` is set; otherwise there is none (no Docker engine runs beside
//! this server: a Docker provisioner would be one more file implementing the trait, chosen in
//! [`Provisioning::from_config`]). [`flow`] runs provisions, restarts and stops over it.

pub mod boot_config;
pub mod control_plane;
pub mod env;
pub mod flow;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use flow::{PendingRestarts, request_restart};

/// What a provision sends: the body of the control plane's `POST /cp/workspaces/provision`
/// (`provisioner/cp_provisioner.go:152-159` at 624ef4d0).
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionRequest {
    pub org_id: String,
    pub workspace_id: Uuid,
    pub runtime: String,
    pub tier: i32,
    pub platform_url: String,
    /// Plaintext: decrypted secrets among them. Never logged.
    pub env: BTreeMap<String, String>,
}

/// A provisioner's failure, kept for the log (users see the original's generic messages).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cp provisioner: send: {0}")]
    Send(#[from] reqwest::Error),
    #[error("cp provisioner: provision failed ({status}): {message}")]
    Provision { status: u16, message: String },
    #[error("cp provisioner: {call}: unexpected {status}: {body}")]
    Unexpected {
        call: &'static str,
        status: u16,
        body: String,
    },
    #[error("cp provisioner: {0}: invalid answer")]
    Decode(&'static str),
}

/// A backend that launches, stops, checks and reads the console of a workspace's machine.
pub trait Provisioner: Send + Sync + Debug {
    /// Launches the machine; its instance id.
    fn start<'a>(
        &'a self,
        request: &'a ProvisionRequest,
    ) -> BoxFuture<'a, Result<String, ProvisionError>>;
    /// Stops (terminates) the machine.
    fn stop<'a>(
        &'a self,
        workspace_id: Uuid,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Whether the machine runs; an error means "unknown" (callers never restart on it).
    fn is_running<'a>(
        &'a self,
        workspace_id: Uuid,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, ProvisionError>>;
    /// The machine's serial console output.
    fn console(&self, workspace_id: Uuid) -> BoxFuture<'_, Result<String, ProvisionError>>;
}

/// Settings of provisioning (server configuration → here).
#[derive(Debug, Clone, Default)]
pub struct ProvisionerConfig {
    /// `MOLECULE_ORG_ID`: selects the control plane.
    pub org_id: Option<String>,
    /// `CP_PROVISION_URL`, else `MOLECULE_CP_URL`, else the public control plane.
    pub base_url: Option<String>,
    /// `MOLECULE_CP_SHARED_SECRET`, else `PROVISION_SHARED_SECRET`.
    pub shared_secret: Option<SecretString>,
    /// `CP_ADMIN_API_TOKEN` (the shared secret when unset).
    pub admin_api_token: Option<SecretString>,
    /// `ADMIN_TOKEN`, sent as `X-Molecule-Admin-Token`.
    pub admin_token: Option<SecretString>,
    /// `PLATFORM_URL`: where the agents reach this server.
    pub platform_url: String,
    /// `PROVISION_CONCURRENCY`: provision calls in flight at most (0 → 16).
    pub concurrency: usize,
    /// `PROVISION_TIMEOUT_SECONDS`: overrides every runtime's provision timeout when set.
    pub timeout_override: Option<Duration>,
    /// How long one control-plane call may take (the original's 120 s).
    pub call_timeout: Option<Duration>,
}

/// The default of `PROVISION_CONCURRENCY`.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The provisioning handle handlers reach through `AppState`: the backend (if any), the cap on
/// provisions in flight, and the tracker of the detached provision and stop tasks.
#[derive(Debug, Clone)]
pub struct Provisioning {
    backend: Option<Arc<dyn Provisioner>>,
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
    org_id: String,
    platform_url: String,
    timeout_override: Option<Duration>,
}

impl Provisioning {
    /// The control plane when `MOLECULE_ORG_ID` is set, else no backend.
    pub fn from_config(config: &ProvisionerConfig) -> Self {
        let backend = config
            .org_id
            .as_ref()
            .map(|_| Arc::new(control_plane::ControlPlane::new(config)) as Arc<dyn Provisioner>);
        Self::with_backend(config, backend)
    }

    /// A handle over any backend (tests, other provisioners).
    pub fn with_backend(config: &ProvisionerConfig, backend: Option<Arc<dyn Provisioner>>) -> Self {
        let concurrency = match config.concurrency {
            0 => DEFAULT_CONCURRENCY,
            n => n,
        };
        Self {
            backend,
            permits: Arc::new(Semaphore::new(concurrency)),
            tasks: TaskTracker::new(),
            org_id: config.org_id.clone().unwrap_or_default(),
            platform_url: config.platform_url.clone(),
            timeout_override: config.timeout_override,
        }
    }

    /// No backend: workspaces wait for `PUT /admin/workspaces/{id}/instance` or their agent.
    pub fn none() -> Self {
        Self::with_backend(&ProvisionerConfig::default(), None)
    }

    pub fn backend(&self) -> Option<&Arc<dyn Provisioner>> {
        self.backend.as_ref()
    }

    /// The provision timeout of a runtime (`registry/provisiontimeout.go:78-93` at 624ef4d0):
    /// `PROVISION_TIMEOUT_SECONDS`, else 30 min for `hermes`, else 10 min.
    pub fn timeout_for(&self, runtime: &str) -> Duration {
        if let Some(timeout) = self.timeout_override {
            return timeout;
        }
        match runtime {
            "hermes" => Duration::from_secs(30 * 60),
            _ => Duration::from_secs(10 * 60),
        }
    }

    /// Waits (at most `timeout`) for the detached provision and stop tasks to end.
    pub async fn drain(&self, timeout: Duration) {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.tasks.len(),
                "provisioning tasks still running at shutdown"
            );
        }
    }
}
