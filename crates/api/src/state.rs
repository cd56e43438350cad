use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use store::Db;

use crate::ApiConfig;
use crate::liveness::{Liveness, SchemaStatus};

/// Everything a handler may reach. Cloned for every request (axum's `State`), so it is one `Arc`:
/// a clone is one atomic increment, whatever [`Services`] holds.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The handles behind [`AppState`].
#[derive(Debug)]
pub struct Services {
    pub db: Db,
    pub config: Arc<ApiConfig>,
    pub metrics: PrometheusHandle,
    /// Last tick of each background loop (`GET /admin/liveness`).
    pub liveness: Liveness,
    /// Whether the migrations have run (`GET /ready`).
    pub schema: SchemaStatus,
    /// The secrets cipher, from `store::crypto::Crypto::from_env_value(SECRETS_ENCRYPTION_KEY,
    /// production)`; the server refuses to start when that fails.
    pub crypto: Arc<store::crypto::Crypto>,
    /// The live event stream (`GET /ws`), fed by `LISTEN structure_events`.
    pub events: crate::events_hub::EventsHub,
    /// Remote files on EC2 instances (lazy: no AWS call before the first operation);
    /// `None` only in tests that never reach an instance.
    pub eic: Option<eic_pool::EicPool>,
    /// The A2A proxy's HTTP client and agents' idle windows.
    pub messaging: crate::messaging::Messaging,
    /// Who launches workspaces' machines (the control plane, or nobody), with the cap on
    /// provisions in flight and the tracker of their tasks.
    pub provisioning: crate::provisioner::Provisioning,
}
