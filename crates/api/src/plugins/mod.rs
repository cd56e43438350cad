//! Plugins (the original's `handlers/plugins*.go`, `handlers/org_plugin_allowlist.go` and
//! `internal/plugins/*` at 624ef4d0), on the workspace's files backend rather than `docker
//! exec`, so they work on EC2 workspaces too.
//!
//! `registry.rs` reads `PLUGINS_DIR` and the manifests; `source.rs` parses a source and fetches
//! it (`local://`, `github://` with the `git` CLI); `stage.rs` validates a fetched tree (every
//! path a [`RelPath`], no symlinks, size and entry caps, the manifest digest); `handlers.rs` the
//! workspace routes (list, install, uninstall, download); `tarball.rs` streams a download;
//! `allowlist.rs` the org allowlist routes. Installed plugins live in `/configs/plugins/<name>`.

pub mod allowlist;
pub mod handlers;
pub mod registry;
pub mod source;
pub mod stage;
mod tarball;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::StoreContext;
use crate::files::RelPath;
use crate::{ApiError, AppState};

pub use registry::PluginInfo;

/// Plugin settings (see `docs/operations.md`).
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// `PLUGINS_DIR`: the registry, one folder per plugin.
    pub dir: PathBuf,
    /// `MAX_PLUGIN_BYTES`: the largest plugin (sum of its files).
    pub max_bytes: u64,
    /// `PLUGIN_GITHUB_BASE_URL`, without a trailing `/`.
    pub github_base_url: String,
    /// `PLUGIN_INSTALL_FETCH_TIMEOUT`: bound of one fetch.
    pub fetch_timeout: Duration,
    /// `PLUGIN_ALLOW_UNPINNED`.
    pub allow_unpinned: bool,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins"),
            max_bytes: DEFAULT_MAX_PLUGIN_BYTES,
            github_base_url: "https://github.com".to_string(),
            fetch_timeout: Duration::from_secs(300),
            allow_unpinned: false,
        }
    }
}

/// The default of `MAX_PLUGIN_BYTES` (the original's `PLUGIN_INSTALL_MAX_DIR_BYTES`).
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 100 * 1024 * 1024;

/// The most entries (files and directories) one plugin may hold.
pub const MAX_PLUGIN_ENTRIES: usize = 5_000;

/// The folder of installed plugins under `/configs`.
pub const INSTALLED_DIR: &str = "plugins";

/// `validatePluginName` (`handlers/plugins_install_pipeline.go:75-86`): non-empty, no `/`, `\`
/// or `..`, and its own base name. Returns the original's message on refusal.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("plugin name is required");
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") {
        return Err("invalid plugin name: must not contain path separators or '..'");
    }
    // filepath.Base differs from the name only for "." (and the cases refused above); control
    // characters cannot reach a path either.
    if name == "." || name.chars().any(char::is_control) || RelPath::parse(name).is_err() {
        return Err("invalid plugin name");
    }
    Ok(())
}

/// `/configs/plugins/<name>` as a path under the configs root.
pub fn installed_path(name: &str) -> Result<RelPath, ApiError> {
    validate_name(name).map_err(|_| ApiError::BadRequest("invalid plugin name".into()))?;
    RelPath::parse(&format!("{INSTALLED_DIR}/{name}"))
        .map_err(|_| ApiError::BadRequest("invalid plugin name".into()))
}

/// `supportsRuntime` (`handlers/plugins.go:116-127`): no runtimes listed matches everything;
/// otherwise `-` and `_` are the same.
pub fn supports_runtime(runtimes: Option<&[String]>, runtime: &str) -> bool {
    let Some(runtimes) = runtimes.filter(|r| !r.is_empty()) else {
        return true;
    };
    let want = runtime.replace('-', "_");
    runtimes.iter().any(|r| r.replace('-', "_") == want)
}

/// `{"plugin","source","status":"installed"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Installed {
    pub plugin: String,
    pub source: String,
    pub status: &'static str,
}

/// `{"plugin","status":"uninstalled"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uninstalled {
    pub plugin: String,
    pub status: &'static str,
}

/// Asks for the workspace's restart after its plugins changed, as the original did (`go
/// restartFunc(id)`, `handlers/plugins_install.go`): through the provisioner when one is
/// configured, else a `WORKSPACE_RESTART_REQUESTED` record (`provisioner::request_restart`).
pub async fn request_restart(
    state: &AppState,
    workspace_id: Uuid,
    reason: &str,
    plugin: &str,
) -> Result<(), ApiError> {
    let context = "failed to request restart";
    let mut tx = state.db.begin().await.context(context)?;
    let mut restarts = crate::provisioner::PendingRestarts::default();
    crate::provisioner::request_restart(
        &state.provisioning,
        &mut tx,
        &[workspace_id],
        &json!({ "reason": reason, "plugin": plugin }),
        &mut restarts,
    )
    .await
    .context(context)?;
    tx.commit().await.context(context)?;
    restarts.dispatch(state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_like_the_original() {
        assert_eq!(validate_name(""), Err("plugin name is required"));
        for bad in ["a/b", "a\\b", "..", "a..b", "../x"] {
            assert_eq!(
                validate_name(bad),
                Err("invalid plugin name: must not contain path separators or '..'"),
                "{bad}"
            );
        }
        assert_eq!(validate_name("."), Err("invalid plugin name"));
        assert_eq!(validate_name("a\nb"), Err("invalid plugin name"));
        assert!(validate_name("My-Plugin_1.0").is_ok());
    }

    #[test]
    fn runtimes_match_with_dashes_or_underscores() {
        let list = vec!["claude_code".to_string()];
        assert!(supports_runtime(None, "x"));
        assert!(supports_runtime(Some(&[]), "x"));
        assert!(supports_runtime(Some(&list), "claude-code"));
        assert!(!supports_runtime(Some(&list), "hermes"));
    }
}
