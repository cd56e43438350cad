use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::ApiConfig;

/// Everything a handler may reach, cheap to clone (handles that are `Arc`s inside).
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<ApiConfig>,
    pub metrics: PrometheusHandle,
}
