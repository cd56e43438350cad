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
    /// The provisioner's settings (`MOLECULE_ORG_ID`, the control plane's URL and secrets,
    /// `PLATFORM_URL`, `PROVISION_*`).
    pub provisioner: crate::provisioner::ProvisionerConfig,
    /// The git sha baked in at build time (`dev` when unknown).
    pub git_sha: String,
    /// The crate version.
    pub version: String,
    /// `EXTERNAL_PLATFORM_URL`: the URL external agents reach this server at (else the
    /// request's forwarded or own scheme and host).
    pub external_platform_url: Option<String>,
}

impl ApiConfig {
    /// Dev mode: `ADMIN_TOKEN` unset and `MOLECULE_ENV` is `development` or `dev`.
    pub fn dev_mode(&self) -> bool {
        self.admin_token.is_none() && matches!(self.molecule_env.as_str(), "development" | "dev")
    }

    /// Production: `MOLECULE_ENV` is `production` or `prod`.
    pub fn production(&self) -> bool {
        matches!(self.molecule_env.as_str(), "production" | "prod")
    }
}
