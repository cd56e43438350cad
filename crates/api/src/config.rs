use std::path::PathBuf;

use secrecy::SecretString;

/// Settings the HTTP layer reads, parsed once by the server binary from flags and environment.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// `ADMIN_TOKEN`: the operators' bearer, compared in constant time.
    pub admin_token: Option<SecretString>,
    /// `MOLECULE_ENV`, trimmed and lowercased (`development`, `production`, …).
    pub molecule_env: String,
    /// `MOLECULE_ENABLE_TEST_TOKENS=1` turns the test-token route on even in production.
    pub enable_test_tokens: bool,
    /// `CONFIGS_DIR`: the template folders.
    pub configs_dir: PathBuf,
    /// `WORKSPACES_DIR`: the local backend's folder per workspace.
    pub workspaces_dir: PathBuf,
    /// `CORS_ORIGINS`, comma-split.
    pub cors_origins: Vec<String>,
    /// `RATE_LIMIT`: requests per minute per client IP.
    pub rate_limit: u32,
    /// Production with `WORKSPACES_DIR` not on a mounted volume: `/ready` reports
    /// `storage: ephemeral`.
    pub ephemeral_storage: bool,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::middleware::client_addr::TrustedProxies,
    /// `MOLECULE_ORG_ID`: when set, the tenant guard is on.
    pub org_id: Option<String>,
    /// `MOLECULE_ORG_SLUG`: the org slug sent to the control plane's session check.
    pub org_slug: Option<String>,
    /// `CANVAS_PROXY_URL`: when set, same-origin canvas requests pass workspace auth.
    pub canvas_proxy_url: Option<String>,
    /// `CP_UPSTREAM_URL`: the control plane that verifies session cookies.
    pub cp_upstream_url: Option<String>,
    /// `MAX_FILE_BYTES`: the largest file content accepted or served.
    pub max_file_bytes: usize,
    /// `REMOTE_LIVENESS_STALE_AFTER`: a remote agent without a heartbeat for this long is offline.
    pub heartbeat_ttl: std::time::Duration,
    /// `AUDIT_LEDGER_SALT`: when set, `GET /workspaces/{id}/audit` verifies the ledger's chain.
    pub audit_ledger: Option<crate::panels::audit::LedgerKey>,
    /// `LANGFUSE_HOST` and its keys: where `GET /workspaces/{id}/traces` reads; `None`: `[]`.
    pub langfuse: Option<crate::panels::traces::LangfuseConfig>,
    /// `MEMORY_PLUGIN_URL`: when set, the Memory tab's memories come from that plugin.
    pub memory_plugin_url: Option<String>,
    /// `MEMORY_PLUGIN_TIMEOUT`: the bound of each plugin request (2 s when zero).
    pub memory_plugin_timeout: std::time::Duration,
    /// `SCHEDULER_POLL_INTERVAL`: how often due schedules are looked for; zero turns firing off.
    pub scheduler_poll: std::time::Duration,
    /// `REQUEST_BODY_TIMEOUT`: a request body not received within it is cut with 408; `None`
    /// is the default (30 s).
    pub request_body_timeout: Option<std::time::Duration>,
    /// `MAX_LIST_ENTRIES`: a file listing stops there and says so; `None` is the default
    /// (10,000).
    pub max_list_entries: Option<usize>,
    /// `MAX_BUNDLE_BYTES`: the largest bundle `POST /bundles/import` reads (413 above it);
    /// `None` is the default (32 MiB).
    pub max_bundle_bytes: Option<usize>,
    /// `ORG_TEMPLATES_DIR`: the org templates (one folder with an `org.yaml` each).
    pub org_templates_dir: std::path::PathBuf,
    /// `ACTIVITY_RETENTION_DAYS`: activities older than this are swept; `None` is the default
    /// (30), `Some(0)` keeps them for ever.
    pub activity_retention_days: Option<u32>,
    /// The provisioner's settings (`MOLECULE_ORG_ID`, the control plane's URL and secrets,
    /// `PLATFORM_URL`, `PROVISION_*`).
    pub provisioner: crate::provisioner::ProvisionerConfig,
    /// `DELEGATION_SWEEPER_INTERVAL_S`: how often stale delegations are swept; `None` or zero is
    /// the default (5 minutes).
    pub delegation_sweep_interval: Option<std::time::Duration>,
    /// `DELEGATION_STUCK_THRESHOLD_S`: an `in_progress` delegation without a heartbeat for this
    /// long is `stuck`; `None` or zero is the default (10 minutes).
    pub delegation_stuck_after: Option<std::time::Duration>,
    /// `DELEGATION_RESULT_INBOX_PUSH=1`: a delegation's outcome is also written into the
    /// delegating workspace's inbox (an `a2a_receive` row), where a poll-mode agent reads it.
    pub delegation_result_inbox_push: bool,
    /// `WORKSPACE_CACHE=false`: `GET /workspaces/{id}` always reads the database.
    pub disable_workspace_cache: bool,
    /// The git sha baked in at build time (`dev` when unknown).
    pub git_sha: String,
    /// The crate version.
    pub version: String,
    /// `EXTERNAL_PLATFORM_URL`: the URL external agents reach this server at (else the
    /// request's forwarded or own scheme and host).
    pub external_platform_url: Option<String>,
    /// `MOLECULE_DEPLOY_MODE`: `saas`, or self-hosted (`self-hosted`, `standalone`, …); unset,
    /// a set `MOLECULE_ORG_ID` means SaaS. Decides which agent addresses the proxy may call.
    pub deploy_mode: String,
    /// `A2A_IDLE_TIMEOUT_SECONDS`: an agent call silent this long is abandoned (zero: 5 minutes).
    pub a2a_idle_window: std::time::Duration,
    /// `A2A_CALL_LIMIT_SECONDS`: the ceiling of one agent call (zero: 30 minutes).
    pub a2a_call_limit: std::time::Duration,
    /// `PLUGINS_DIR`, `MAX_PLUGIN_BYTES`, `PLUGIN_GITHUB_BASE_URL`, `PLUGIN_INSTALL_FETCH_TIMEOUT`,
    /// `PLUGIN_ALLOW_UNPINNED`: the plugin registry and installs.
    pub plugins: crate::plugins::PluginsConfig,
}

impl ApiConfig {
    /// Dev mode: `ADMIN_TOKEN` unset and `MOLECULE_ENV` is `development` or `dev`.
    pub fn dev_mode(&self) -> bool {
        self.admin_token.is_none() && matches!(self.molecule_env.as_str(), "development" | "dev")
    }

    /// The idle window of agent calls (the original's default: 5 minutes).
    pub fn a2a_idle_timeout(&self) -> std::time::Duration {
        match self.a2a_idle_window.is_zero() {
            true => std::time::Duration::from_secs(5 * 60),
            false => self.a2a_idle_window,
        }
    }

    /// The ceiling of one agent call (the original's: 30 minutes).
    pub fn a2a_total_timeout(&self) -> std::time::Duration {
        match self.a2a_call_limit.is_zero() {
            true => std::time::Duration::from_secs(30 * 60),
            false => self.a2a_call_limit,
        }
    }

    /// Production: `MOLECULE_ENV` is `production` or `prod`.
    pub fn production(&self) -> bool {
        matches!(self.molecule_env.as_str(), "production" | "prod")
    }
}
