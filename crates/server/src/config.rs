//! Configuration: parsed once from flags and environment (the Go original's names where it had
//! them), then split into the settings of each layer.
// The doc comments below are clap's `--help` text, where `<data-dir>` is literal, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

/// workspace-server: the HTTP backend of the agent-workspace canvas.
///
/// Every setting can be given as a flag or through the environment variable shown. Without
/// DATABASE_URL the server runs a built-in PostgreSQL in <data-dir>/postgres.
#[derive(Debug, Parser)]
#[command(name = "workspace-server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// GET http://127.0.0.1:$PORT/health; exit 0 on 200, else 1 (for container health checks).
    Healthcheck,
    /// Print the version and the git sha it was built from.
    Version,
    /// Re-encrypt every secret at rest from SECRETS_ENCRYPTION_KEY_OLD to SECRETS_ENCRYPTION_KEY
    /// in one transaction, and exit (idempotent: rows already under the new key are kept).
    RotateSecretsKey,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080, global = true)]
    pub port: u16,

    /// Address to listen on: `::` is dual-stack (IPv6 and IPv4); `0.0.0.0` is IPv4 only.
    #[arg(long, env = "LISTEN_ADDR", default_value = "::", global = true)]
    pub listen_addr: std::net::IpAddr,

    /// Proxies (CIDRs, comma-separated) whose `X-Forwarded-For` names the client, e.g.
    /// `10.0.0.0/8`; from any other peer the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = api::middleware::client_addr::TrustedProxies::parse, global = true)]
    pub trusted_proxies: api::middleware::client_addr::TrustedProxies,

    /// PostgreSQL URL. Unset: run the built-in PostgreSQL in <data-dir>/postgres.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<SecretString>,

    /// Directory for the server's own data (built-in PostgreSQL, default templates and workspaces).
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Most connections to the database, half of them for transactions and the rest for
    /// single statements (a few busy connections serve PostgreSQL best).
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 8, global = true)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection (e.g. `5s`, `500ms`).
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// Operators' bearer token for admin routes. Unset with MOLECULE_ENV=development: dev mode.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<SecretString>,

    /// Deployment environment: `development`, `staging` or `production` (unset: neither
    /// development's open access nor production's requirements).
    #[arg(long, env = "MOLECULE_ENV", default_value = "", global = true)]
    pub molecule_env: String,

    /// Serve the test-token route even in production (`1`/`true`).
    #[arg(long, env = "MOLECULE_ENABLE_TEST_TOKENS", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub enable_test_tokens: bool,

    /// 32-byte key (base64 or raw) encrypting secrets at rest; required in production.
    #[arg(
        long,
        env = "SECRETS_ENCRYPTION_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secrets_encryption_key: Option<SecretString>,

    /// The key being retired, read only by `rotate-secrets-key` (which re-encrypts every secret
    /// from it to SECRETS_ENCRYPTION_KEY); unset when moving plaintext secrets to a first key.
    #[arg(
        long,
        env = "SECRETS_ENCRYPTION_KEY_OLD",
        hide_env_values = true,
        global = true
    )]
    pub secrets_encryption_key_old: Option<SecretString>,

    /// Template folders [default: ./workspace-configs-templates if present, else <data-dir>/templates].
    #[arg(long, env = "CONFIGS_DIR", global = true)]
    pub configs_dir: Option<PathBuf>,

    /// Local workspaces' files [default: <data-dir>/workspaces].
    #[arg(long, env = "WORKSPACES_DIR", global = true)]
    pub workspaces_dir: Option<PathBuf>,

    /// Browser origins allowed by CORS, comma-separated. Unset: CORS allows the original's
    /// `http://localhost:3000` and `:3001`, and `/ws` any origin (set, `/ws` wants one of them).
    #[arg(long, env = "CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,

    /// Requests per minute per client IP; `0` turns the limiter off.
    #[arg(long, env = "RATE_LIMIT", default_value_t = 600, global = true)]
    pub rate_limit: u32,

    /// Organisation id; when set, the tenant guard is on.
    #[arg(long, env = "MOLECULE_ORG_ID", global = true)]
    pub org_id: Option<String>,

    /// Organisation slug sent to the control plane's session check.
    #[arg(long, env = "MOLECULE_ORG_SLUG", global = true)]
    pub org_slug: Option<String>,

    /// Canvas origin; same-origin canvas requests pass workspace auth when set.
    #[arg(long, env = "CANVAS_PROXY_URL", global = true)]
    pub canvas_proxy_url: Option<String>,

    /// Public URL external agents reach this server at (their connection snippets name it).
    #[arg(long, env = "EXTERNAL_PLATFORM_URL", global = true)]
    pub external_platform_url: Option<String>,

    /// Control plane that verifies session cookies.
    #[arg(long, env = "CP_UPSTREAM_URL", global = true)]
    pub cp_upstream_url: Option<String>,

    /// Control plane's provisioning API (else MOLECULE_CP_URL, else the public control plane).
    #[arg(long, env = "CP_PROVISION_URL", global = true)]
    pub cp_provision_url: Option<String>,

    /// Control plane's URL (boot-time configuration refresh; provisioning's fallback).
    #[arg(long, env = "MOLECULE_CP_URL", global = true)]
    pub molecule_cp_url: Option<String>,

    /// Bearer of the control plane's provisioning calls.
    #[arg(
        long,
        env = "MOLECULE_CP_SHARED_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub cp_shared_secret: Option<SecretString>,

    /// Older name of MOLECULE_CP_SHARED_SECRET.
    #[arg(
        long,
        env = "PROVISION_SHARED_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub provision_shared_secret: Option<SecretString>,

    /// Bearer of the control plane's admin calls (the console); the shared secret when unset.
    #[arg(
        long,
        env = "CP_ADMIN_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub cp_admin_api_token: Option<SecretString>,

    /// URL the provisioned agents reach this server at (default `http://host.docker.internal:<port>`).
    #[arg(long, env = "PLATFORM_URL", global = true)]
    pub platform_url: Option<String>,

    /// Provision timeout for every runtime, in seconds (default: 30 min for hermes, else 10 min).
    #[arg(long, env = "PROVISION_TIMEOUT_SECONDS", global = true)]
    pub provision_timeout_seconds: Option<u64>,

    /// Provision calls to the control plane in flight at most.
    #[arg(
        long,
        env = "PROVISION_CONCURRENCY",
        default_value_t = 16,
        global = true
    )]
    pub provision_concurrency: usize,

    /// Largest file content accepted or served, in bytes.
    #[arg(long, env = "MAX_FILE_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_file_bytes: usize,

    /// The most entries one file listing returns (`x-list-truncated: true` when cut).
    #[arg(
        long,
        env = "MAX_LIST_ENTRIES",
        default_value_t = 10_000,
        global = true
    )]
    pub max_list_entries: usize,

    /// Largest bundle `POST /bundles/import` reads, in bytes (413 above it).
    #[arg(long, env = "MAX_BUNDLE_BYTES", default_value_t = 32 * 1024 * 1024, global = true)]
    pub max_bundle_bytes: usize,

    /// Org templates [default: ./org-templates if present, else <data-dir>/org-templates].
    #[arg(long, env = "ORG_TEMPLATES_DIR", global = true)]
    pub org_templates_dir: Option<PathBuf>,

    /// Activities older than this many days are deleted by an hourly sweep; 0 keeps them.
    #[arg(
        long,
        env = "ACTIVITY_RETENTION_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub activity_retention_days: u32,

    /// Seconds between two sweeps of stale delegations; 0 is the default (300).
    #[arg(
        long,
        env = "DELEGATION_SWEEPER_INTERVAL_S",
        default_value_t = 300,
        global = true
    )]
    pub delegation_sweeper_interval_s: u64,

    /// Seconds without a heartbeat after which an in-progress delegation is stuck; 0 is the
    /// default (600).
    #[arg(
        long,
        env = "DELEGATION_STUCK_THRESHOLD_S",
        default_value_t = 600,
        global = true
    )]
    pub delegation_stuck_threshold_s: u64,

    /// `1`: a delegation's result is also written into the delegating workspace's inbox (its
    /// activity, as an `a2a_receive` row) for a poll-mode agent; any other value is off, as in the
    /// original.
    #[arg(
        long,
        env = "DELEGATION_RESULT_INBOX_PUSH",
        default_value = "",
        global = true
    )]
    pub delegation_result_inbox_push: String,
    /// Serve `GET /workspaces/{id}` from the in-process cache (`false`: always the database).
    #[arg(long, env = "WORKSPACE_CACHE", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub workspace_cache: bool,

    /// A request body not fully received within this is cut with 408.
    #[arg(long, env = "REQUEST_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_body_timeout: Duration,

    /// Seconds without a heartbeat after which a remote agent counts as offline.
    #[arg(long, env = "REMOTE_LIVENESS_STALE_AFTER", default_value = "90s", value_parser = parse_duration, global = true)]
    pub heartbeat_ttl: Duration,

    /// The external memory plugin serving the Memory tab (unset: memories are served in-process).
    #[arg(long, env = "MEMORY_PLUGIN_URL", global = true)]
    pub memory_plugin_url: Option<String>,

    /// The bound of each memory plugin request.
    #[arg(long, env = "MEMORY_PLUGIN_TIMEOUT", default_value = "2s", value_parser = parse_duration, global = true)]
    pub memory_plugin_timeout: Duration,

    /// How often the schedules' firing loop looks for due schedules (0 turns firing off).
    #[arg(long, env = "SCHEDULER_POLL_INTERVAL", default_value = "30s", value_parser = parse_duration, global = true)]
    pub scheduler_poll: Duration,
    /// `saas` or self-hosted (`self-hosted`, `standalone`); unset, MOLECULE_ORG_ID means SaaS.
    #[arg(long, env = "MOLECULE_DEPLOY_MODE", default_value = "", global = true)]
    pub deploy_mode: String,

    /// Seconds of silence after which an agent call through `/a2a` is abandoned.
    #[arg(
        long,
        env = "A2A_IDLE_TIMEOUT_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub a2a_idle_timeout_seconds: u64,

    /// Seconds one agent call through `/a2a` may take at most.
    #[arg(
        long,
        env = "A2A_CALL_LIMIT_SECONDS",
        default_value_t = 1800,
        global = true
    )]
    pub a2a_call_limit_seconds: u64,

    /// The plugin registry: one folder per plugin [default: ./plugins if present, else <data-dir>/plugins].
    #[arg(long, env = "PLUGINS_DIR", global = true)]
    pub plugins_dir: Option<PathBuf>,

    /// Largest plugin (sum of its files' bytes) that may be installed or downloaded.
    #[arg(long, env = "MAX_PLUGIN_BYTES", default_value_t = 100 * 1024 * 1024, global = true)]
    pub max_plugin_bytes: u64,

    /// Where `github://owner/repo` sources are cloned from (`<base>/<owner>/<repo>.git`).
    #[arg(
        long,
        env = "PLUGIN_GITHUB_BASE_URL",
        default_value = "https://github.com",
        global = true
    )]
    pub plugin_github_base_url: String,

    /// Bound of one plugin fetch (a `git` clone or a registry copy).
    #[arg(long, env = "PLUGIN_INSTALL_FETCH_TIMEOUT", default_value = "5m", value_parser = parse_duration, global = true)]
    pub plugin_fetch_timeout: Duration,

    /// Accept `github://owner/repo` without a `#ref` (`1`/`true`).
    #[arg(long, env = "PLUGIN_ALLOW_UNPINNED", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, global = true)]
    pub plugin_allow_unpinned: bool,

    /// AWS region of the workspaces' EC2 instances.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-2", global = true)]
    pub aws_region: String,

    /// Login user on the workspaces' EC2 instances.
    #[arg(
        long,
        env = "WORKSPACE_EC2_OS_USER",
        default_value = "ubuntu",
        global = true
    )]
    pub ec2_os_user: String,

    /// Command that runs the SFTP server on an instance.
    #[arg(
        long,
        env = "EIC_SFTP_COMMAND",
        default_value = "sudo -n /usr/lib/openssh/sftp-server",
        global = true
    )]
    pub eic_sftp_command: String,

    /// Idle EIC connections kept at most (least recently used closed first).
    #[arg(
        long,
        env = "EIC_POOL_MAX_INSTANCES",
        default_value_t = 32,
        global = true
    )]
    pub eic_pool_max_instances: usize,

    /// Concurrent EIC tunnels at most, across all instances (an endpoint allows 20).
    #[arg(long, env = "EIC_MAX_TUNNELS", default_value_t = 16, global = true)]
    pub eic_max_tunnels: usize,

    /// File operations in flight at most on one EIC connection; they share its one SFTP
    /// channel, pipelined by request id.
    #[arg(
        long,
        env = "EIC_MAX_OPS_PER_CONNECTION",
        default_value_t = 32,
        global = true
    )]
    pub eic_max_ops_per_connection: usize,

    /// EIC Endpoint id; with `EIC_ENDPOINT_DNS`, no `DescribeInstanceConnectEndpoints` call.
    #[arg(long, env = "EIC_ENDPOINT_ID", global = true)]
    pub eic_endpoint_id: Option<String>,

    /// EIC Endpoint DNS name; with `EIC_ENDPOINT_ID`, no `DescribeInstanceConnectEndpoints` call.
    #[arg(long, env = "EIC_ENDPOINT_DNS", global = true)]
    pub eic_endpoint_dns: Option<String>,

    /// Private IPs of instances, `i-…=10.0.0.5,i-…=10.0.0.6`; with the endpoint configured, no
    /// EC2 call at all for those instances.
    #[arg(long, env = "EIC_INSTANCE_IPS", value_parser = parse_instance_ips, default_value = "", global = true)]
    pub eic_instance_ips: InstanceIps,

    /// Budget of one remote file operation; past it the API answers 504.
    #[arg(long, env = "EIC_OPERATION_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub eic_operation_timeout: Duration,

    /// Close an EIC connection unused for this long.
    #[arg(long, env = "EIC_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration, global = true)]
    pub eic_idle_timeout: Duration,

    /// Recycle every EIC connection after this long (below the tunnel's 1 h maximum).
    #[arg(long, env = "EIC_MAX_LIFETIME", default_value = "55m", value_parser = parse_duration, global = true)]
    pub eic_max_lifetime: Duration,

    /// Secret of the agents' audit ledger; when set, `/workspaces/{id}/audit` verifies its chain.
    #[arg(long, env = "AUDIT_LEDGER_SALT", hide_env_values = true, global = true)]
    pub audit_ledger_salt: Option<SecretString>,

    /// Langfuse base URL for `/workspaces/{id}/traces` (with both keys; else the route answers `[]`).
    #[arg(long, env = "LANGFUSE_HOST", global = true)]
    pub langfuse_host: Option<String>,

    /// Langfuse public key (HTTP basic auth user).
    #[arg(
        long,
        env = "LANGFUSE_PUBLIC_KEY",
        hide_env_values = true,
        global = true
    )]
    pub langfuse_public_key: Option<SecretString>,

    /// Langfuse secret key (HTTP basic auth password).
    #[arg(
        long,
        env = "LANGFUSE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub langfuse_secret_key: Option<SecretString>,

    /// Budget of one Langfuse call; past it `/workspaces/{id}/traces` answers `[]`.
    #[arg(long, env = "LANGFUSE_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub langfuse_timeout: Duration,

    /// Log format; RUST_LOG sets the filter (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, ignore_case = true, global = true)]
    pub log_format: LogFormat,

    /// On SIGTERM/Ctrl-C, how long the whole shutdown may take (requests in flight, EIC
    /// connections, database); under Kubernetes' 30 s grace period by default.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration, global = true)]
    pub shutdown_timeout: Duration,
}

impl Config {
    /// The settings of the HTTP layer.
    // Fields other layers add later keep their defaults until they are wired here.
    #[allow(clippy::needless_update)]
    pub fn api_config(&self) -> api::ApiConfig {
        api::ApiConfig {
            admin_token: self
                .admin_token
                .clone()
                .filter(|token| !token.expose_secret().is_empty()),
            molecule_env: self.molecule_env.trim().to_lowercase(),
            enable_test_tokens: self.enable_test_tokens,
            configs_dir: self.configs_dir(),
            workspaces_dir: self.workspaces_dir(),
            cors_origins: split_list(&self.cors_origins),
            rate_limit: self.rate_limit,
            trusted_proxies: self.trusted_proxies.clone(),
            ephemeral_storage: self.molecule_env.trim().eq_ignore_ascii_case("production")
                && !on_a_volume(&self.workspaces_dir()),
            org_id: non_empty(&self.org_id),
            org_slug: non_empty(&self.org_slug),
            canvas_proxy_url: non_empty(&self.canvas_proxy_url),
            cp_upstream_url: non_empty(&self.cp_upstream_url),
            max_file_bytes: self.max_file_bytes,
            heartbeat_ttl: self.heartbeat_ttl,
            audit_ledger: self
                .audit_ledger_salt
                .as_ref()
                .map(ExposeSecret::expose_secret)
                .filter(|salt| !salt.is_empty())
                .map(api::panels::audit::LedgerKey::new),
            langfuse: api::panels::traces::LangfuseConfig::new(
                self.langfuse_host.as_deref().unwrap_or_default(),
                self.langfuse_public_key
                    .as_ref()
                    .map_or("", ExposeSecret::expose_secret),
                self.langfuse_secret_key
                    .as_ref()
                    .map_or("", ExposeSecret::expose_secret),
                self.langfuse_timeout,
            ),
            memory_plugin_url: non_empty(&self.memory_plugin_url),
            memory_plugin_timeout: self.memory_plugin_timeout,
            scheduler_poll: self.scheduler_poll,
            request_body_timeout: Some(self.request_body_timeout),
            max_list_entries: Some(self.max_list_entries),
            max_bundle_bytes: Some(self.max_bundle_bytes),
            org_templates_dir: self.org_templates_dir(),
            activity_retention_days: Some(self.activity_retention_days),
            delegation_sweep_interval: Some(Duration::from_secs(
                self.delegation_sweeper_interval_s,
            )),
            delegation_stuck_after: Some(Duration::from_secs(self.delegation_stuck_threshold_s)),
            delegation_result_inbox_push: self.delegation_result_inbox_push == "1",
            disable_workspace_cache: !self.workspace_cache,
            git_sha: crate::GIT_SHA.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            external_platform_url: non_empty(&self.external_platform_url),
            deploy_mode: self.deploy_mode.clone(),
            a2a_idle_window: Duration::from_secs(self.a2a_idle_timeout_seconds),
            a2a_call_limit: Duration::from_secs(self.a2a_call_limit_seconds),
            provisioner: self.provisioner_config(),
            plugins: api::plugins::PluginsConfig {
                dir: self.plugins_dir(),
                max_bytes: self.max_plugin_bytes,
                github_base_url: self
                    .plugin_github_base_url
                    .trim_end_matches('/')
                    .to_string(),
                fetch_timeout: self.plugin_fetch_timeout,
                allow_unpinned: self.plugin_allow_unpinned,
            },
            ..api::ApiConfig::default()
        }
    }

    /// The provisioner's settings: the control plane when MOLECULE_ORG_ID is set.
    pub fn provisioner_config(&self) -> api::provisioner::ProvisionerConfig {
        let secret = |value: &Option<SecretString>| {
            value
                .clone()
                .filter(|secret| !secret.expose_secret().is_empty())
        };
        api::provisioner::ProvisionerConfig {
            org_id: non_empty(&self.org_id),
            base_url: non_empty(&self.cp_provision_url)
                .or_else(|| non_empty(&self.molecule_cp_url)),
            shared_secret: secret(&self.cp_shared_secret)
                .or_else(|| secret(&self.provision_shared_secret)),
            admin_api_token: secret(&self.cp_admin_api_token),
            admin_token: secret(&self.admin_token),
            platform_url: non_empty(&self.platform_url)
                .unwrap_or_else(|| format!("http://host.docker.internal:{}", self.port)),
            concurrency: self.provision_concurrency,
            timeout_override: self
                .provision_timeout_seconds
                .filter(|seconds| *seconds > 0)
                .map(Duration::from_secs),
            call_timeout: None,
        }
    }

    /// Applies the control plane's boot-time configuration (`/cp/tenants/config`) to the
    /// settings it may carry; other keys are ignored (this process cannot change its own
    /// environment).
    pub fn apply_cp_config(&mut self, values: &std::collections::BTreeMap<String, String>) {
        for (key, value) in values {
            let value = Some(value.clone());
            match key.as_str() {
                "MOLECULE_CP_SHARED_SECRET" => {
                    self.cp_shared_secret = value.map(SecretString::from)
                }
                "PROVISION_SHARED_SECRET" => {
                    self.provision_shared_secret = value.map(SecretString::from)
                }
                "CP_ADMIN_API_TOKEN" => self.cp_admin_api_token = value.map(SecretString::from),
                "CP_PROVISION_URL" => self.cp_provision_url = value,
                "MOLECULE_CP_URL" => self.molecule_cp_url = value,
                "CP_UPSTREAM_URL" => self.cp_upstream_url = value,
                "MOLECULE_ORG_SLUG" => self.org_slug = value,
                "PLATFORM_URL" => self.platform_url = value,
                _ => tracing::debug!(%key, "control plane setting not applicable here"),
            }
        }
    }

    /// The settings of the EIC path.
    #[allow(clippy::needless_update)]
    pub fn eic_config(&self) -> eic_pool::EicConfig {
        eic_pool::EicConfig {
            region: self.aws_region.clone(),
            os_user: self.ec2_os_user.clone(),
            sftp_command: self.eic_sftp_command.clone(),
            operation_timeout: self.eic_operation_timeout,
            idle_timeout: self.eic_idle_timeout,
            max_lifetime: self.eic_max_lifetime,
            max_instances: self.eic_pool_max_instances,
            max_tunnels: self.eic_max_tunnels,
            max_ops_per_connection: self.eic_max_ops_per_connection,
            endpoint_id: self.eic_endpoint_id.clone(),
            endpoint_dns: self.eic_endpoint_dns.clone(),
            instance_ips: self.eic_instance_ips.0.clone(),
            ..eic_pool::EicConfig::default()
        }
    }

    /// Every check that needs no database: a misconfigured release exits here, before the
    /// migrations touch anything. All problems are reported at once.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let env = self.molecule_env.trim().to_lowercase();
        if !env.is_empty() && !ENVIRONMENTS.contains(&env.as_str()) {
            problems.push(format!(
                "MOLECULE_ENV={:?} is not one of {}",
                self.molecule_env,
                ENVIRONMENTS.join(", ")
            ));
        }
        if env == "production" {
            if self.api_config().admin_token.is_none() {
                problems.push("ADMIN_TOKEN is required in production".to_owned());
            }
            if set(&self.database_url).is_none() {
                problems.push(
                    "DATABASE_URL is required in production (no built-in PostgreSQL)".to_owned(),
                );
            }
        }
        let key = set(&self.secrets_encryption_key);
        if let Err(error) = store::crypto::Crypto::from_env_value(key, env == "production") {
            problems.push(format!("SECRETS_ENCRYPTION_KEY: {error}"));
        }
        if let Some(old) = set(&self.secrets_encryption_key_old)
            && let Err(error) = store::crypto::Crypto::from_env_value(Some(old), false)
        {
            problems.push(format!("SECRETS_ENCRYPTION_KEY_OLD: {error}"));
        }
        if let Some(url) = set(&self.database_url)
            && let Err(error) = url.parse::<sqlx::postgres::PgConnectOptions>()
        {
            problems.push(format!("DATABASE_URL is not a PostgreSQL URL: {error}"));
        }
        if self.shutdown_timeout.is_zero() {
            problems.push("SHUTDOWN_TIMEOUT must be more than 0".to_owned());
        }
        if problems.is_empty() {
            return Ok(());
        }
        anyhow::bail!("invalid configuration: {}", problems.join("; "))
    }

    /// The auth mode in one phrase, and the settings that weaken it (logged at every start).
    pub fn auth_mode(&self) -> (&'static str, Vec<&'static str>) {
        let api = self.api_config();
        let mode = if api.dev_mode() {
            "open development (no ADMIN_TOKEN: every route passes)"
        } else if api.org_id.is_some() {
            "tenant with control-plane sessions"
        } else if api.admin_token.is_some() {
            "admin token"
        } else {
            "no ADMIN_TOKEN: admin routes open until the first token is issued"
        };
        let mut weakened = Vec::new();
        if api.molecule_env != "production" || api.enable_test_tokens {
            weakened.push("test-token route on");
        }
        if set(&self.secrets_encryption_key).is_none() {
            weakened.push("secrets stored unencrypted (no SECRETS_ENCRYPTION_KEY)");
        }
        if api.rate_limit == 0 {
            weakened.push("rate limit off (RATE_LIMIT=0)");
        }
        if api.canvas_proxy_url.is_some() {
            weakened.push("same-origin canvas requests pass workspace auth (CANVAS_PROXY_URL)");
        }
        (mode, weakened)
    }

    fn configs_dir(&self) -> PathBuf {
        if let Some(dir) = &self.configs_dir {
            return dir.clone();
        }
        let bundled = Path::new("workspace-configs-templates");
        if bundled.is_dir() {
            bundled.to_path_buf()
        } else {
            self.data_dir.join("templates")
        }
    }

    fn plugins_dir(&self) -> PathBuf {
        if let Some(dir) = &self.plugins_dir {
            return dir.clone();
        }
        let bundled = Path::new("plugins");
        if bundled.is_dir() {
            bundled.to_path_buf()
        } else {
            self.data_dir.join("plugins")
        }
    }

    fn org_templates_dir(&self) -> PathBuf {
        if let Some(dir) = &self.org_templates_dir {
            return dir.clone();
        }
        let bundled = Path::new("org-templates");
        if bundled.is_dir() {
            bundled.to_path_buf()
        } else {
            self.data_dir.join("org-templates")
        }
    }

    fn workspaces_dir(&self) -> PathBuf {
        self.workspaces_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("workspaces"))
    }
}

/// Whether `path` (or the nearest existing ancestor) lies under a mount point other than `/`,
/// from `/proc/self/mountinfo`; `true` where that cannot be read (not Linux), to stay quiet.
fn on_a_volume(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    let existing = path.ancestors().find_map(|dir| dir.canonicalize().ok());
    let Some(path) = existing else {
        return false;
    };
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|mount_point| *mount_point != "/")
        .any(|mount_point| path.starts_with(mount_point))
}

/// The values `MOLECULE_ENV` may take (besides unset).
pub const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

/// A secret's value when it is set and not empty.
fn set(value: &Option<SecretString>) -> Option<&str> {
    value
        .as_ref()
        .map(ExposeSecret::expose_secret)
        .filter(|v| !v.is_empty())
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// Parses `30`, `30s`, `500ms`, `5m` or `1h` (a bare number is seconds).
/// `EIC_INSTANCE_IPS`: instance id → private IP.
#[derive(Debug, Clone, Default)]
pub struct InstanceIps(pub std::collections::HashMap<String, String>);

fn parse_instance_ips(text: &str) -> Result<InstanceIps, String> {
    let mut ips = std::collections::HashMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (instance, ip) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not `instance-id=ip`"))?;
        let ip: std::net::IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        ips.insert(instance.trim().to_owned(), ip.to_string());
    }
    Ok(InstanceIps(ips))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s, 500ms, 5m"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("workspace-server").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn unset_cors_origins_is_empty_so_the_live_stream_takes_any_origin() {
        // CORS falls back to the localhost defaults by itself; `/ws` checks origins only when
        // the operator set the list, as the original's upgrader read the raw variable.
        assert!(parse(&[]).config.api_config().cors_origins.is_empty());
    }

    #[test]
    fn max_ops_per_connection_reaches_the_eic_config() {
        let cli = parse(&["--eic-max-ops-per-connection", "12"]);
        assert_eq!(cli.config.eic_config().max_ops_per_connection, 12);
    }

    #[test]
    fn instance_ips_parse_into_the_eic_config() {
        let cli = parse(&[
            "--eic-endpoint-id",
            "eice-1",
            "--eic-endpoint-dns",
            "eice-1.example",
            "--eic-instance-ips",
            "i-0123456789abcdef0=10.0.0.5, i-01234567=10.0.0.6",
        ]);
        let eic = cli.config.eic_config();
        assert_eq!(eic.endpoint_id.as_deref(), Some("eice-1"));
        assert_eq!(eic.max_ops_per_connection, 32, "the default");
        assert_eq!(eic.instance_ips["i-0123456789abcdef0"], "10.0.0.5");
        assert_eq!(eic.instance_ips["i-01234567"], "10.0.0.6");
        assert!(parse_instance_ips("i-1=not-an-ip").is_err());
        assert!(parse_instance_ips("i-1").is_err());
        assert!(parse_instance_ips("").unwrap().0.is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let secrets = [
            "admin-token-5d1f0c",
            "encryption-key-9a7e22",
            "db-password-41b7",
            "audit-salt-77c1",
            "langfuse-secret-3e9d",
        ];
        let cli = parse(&[
            "--admin-token",
            secrets[0],
            "--secrets-encryption-key",
            secrets[1],
            "--database-url",
            "postgres://app:db-password-41b7@db.internal/app",
            "--audit-ledger-salt",
            secrets[3],
            "--langfuse-secret-key",
            secrets[4],
        ]);
        let printed = [
            format!("{cli:?}"),
            format!("{:?}", cli.config.api_config()),
            format!("{:?}", cli.config.eic_config()),
        ];
        for (text, secret) in printed.iter().flat_map(|t| secrets.map(|s| (t, s))) {
            assert!(!text.contains(secret), "{secret} printed in {text}");
        }
        // The values themselves are there for the code that uses them.
        let admin = cli.config.api_config().admin_token.unwrap();
        assert_eq!(admin.expose_secret(), secrets[0]);
    }

    #[test]
    fn flags_work_before_and_after_the_subcommand() {
        let cli = parse(&["--port", "9000", "serve", "--data-dir", "/tmp/x"]);
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.config.port, 9000);
        assert_eq!(cli.config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            cli.config.api_config().workspaces_dir,
            PathBuf::from("/tmp/x/workspaces")
        );
    }

    #[test]
    fn panels_settings_reach_the_api_config() {
        let api = parse(&[]).config.api_config();
        assert!(api.audit_ledger.is_none() && api.langfuse.is_none());
        let api = parse(&[
            "--audit-ledger-salt",
            "salt",
            "--langfuse-host",
            "http://langfuse:3000",
            "--langfuse-public-key",
            "pk",
            "--langfuse-secret-key",
            "sk",
        ])
        .config
        .api_config();
        assert!(api.audit_ledger.is_some() && api.langfuse.is_some());
        // Langfuse needs all three values, like the original.
        let half = parse(&[
            "--langfuse-host",
            "http://langfuse:3000",
            "--langfuse-public-key",
            "pk",
        ]);
        assert!(half.config.api_config().langfuse.is_none());
        assert_eq!(parse(&[]).config.langfuse_timeout, Duration::from_secs(10));
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn problems(args: &[&str]) -> String {
        match parse(args).config.validate() {
            Ok(()) => String::new(),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn molecule_env_is_one_of_a_fixed_set() {
        for env in ["", "development", "staging", " Development "] {
            assert_eq!(problems(&["--molecule-env", env]), "", "{env:?}");
        }
        for typo in ["prod", "dev", "produciton"] {
            let text = problems(&["--molecule-env", typo]);
            assert!(
                text.contains(&format!("MOLECULE_ENV=\"{typo}\" is not one of")),
                "{text}"
            );
        }
    }

    #[test]
    fn production_requires_its_settings_and_names_each() {
        // DATABASE_URL may come from the test's environment: the black-box tests check it.
        let text = problems(&["--molecule-env", "production"]);
        for name in ["ADMIN_TOKEN", "SECRETS_ENCRYPTION_KEY"] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
        let complete = [
            "--molecule-env",
            "production",
            "--admin-token",
            "admin",
            "--database-url",
            "postgres://db.internal/app?sslmode=verify-full",
            "--secrets-encryption-key",
            KEY,
        ];
        assert_eq!(problems(&complete), "");
        let cli = parse(&complete);
        let (mode, weakened) = cli.config.auth_mode();
        assert_eq!((mode, weakened), ("admin token", vec![]));
    }

    #[test]
    fn bad_values_are_refused_in_any_environment() {
        let text = problems(&[
            "--secrets-encryption-key",
            "too-short",
            "--database-url",
            "postgres://[not-a-host",
            "--shutdown-timeout",
            "0s",
        ]);
        for name in ["SECRETS_ENCRYPTION_KEY", "DATABASE_URL", "SHUTDOWN_TIMEOUT"] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
        let refused = Cli::try_parse_from(["workspace-server", "--trusted-proxies", "10.0.0.0/33"]);
        assert!(refused.is_err());
    }

    #[test]
    fn storage_is_ephemeral_only_in_production_off_a_volume() {
        // /proc is a mount on Linux; the root of an overlay container is not.
        assert!(on_a_volume(Path::new("/proc/self")));
        let on_proc = [
            "--molecule-env",
            "production",
            "--workspaces-dir",
            "/proc/self",
        ];
        assert!(!parse(&on_proc).config.api_config().ephemeral_storage);
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().to_str().unwrap();
        let expected = !on_a_volume(data.path());
        let prod = parse(&["--molecule-env", "production", "--workspaces-dir", dir]);
        assert_eq!(prod.config.api_config().ephemeral_storage, expected);
        let dev = parse(&["--molecule-env", "development", "--workspaces-dir", dir]);
        assert!(!dev.config.api_config().ephemeral_storage);
    }

    #[test]
    fn the_auth_mode_names_what_weakens_it() {
        let (mode, weakened) = parse(&["--molecule-env", "development", "--rate-limit", "0"])
            .config
            .auth_mode();
        assert!(mode.starts_with("open development"), "{mode}");
        assert!(
            weakened.contains(&"rate limit off (RATE_LIMIT=0)"),
            "{weakened:?}"
        );
        assert!(weakened.iter().any(|w| w.contains("unencrypted")));
        let defaults = parse(&[]).config;
        assert_eq!(defaults.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(defaults.listen_addr.to_string(), "::");
    }

    #[test]
    fn api_config_normalises_values() {
        let cli = parse(&[
            "--molecule-env",
            " Production ",
            "--cors-origins",
            "http://a, http://b,,",
            "--admin-token",
            "",
            "--enable-test-tokens",
            "1",
        ]);
        let api = cli.config.api_config();
        assert!(api.production());
        assert_eq!(api.cors_origins, ["http://a", "http://b"]);
        assert!(api.admin_token.is_none());
        assert!(api.enable_test_tokens);
        assert_eq!(api.max_file_bytes, 1024 * 1024);
    }
}
