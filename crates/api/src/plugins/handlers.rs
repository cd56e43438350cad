//! The plugin routes (`handlers/plugins_listing.go`, `plugins_install.go`, `plugins_sources.go`
//! at 624ef4d0). Installed plugins are read and written through the workspace's files backend
//! (`/configs/plugins/<name>`), local or on its EC2 instance.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::registry::{self, MAX_MANIFEST_BYTES, PluginInfo};
use super::source::{self, SCHEMES};
use super::{
    INSTALLED_DIR, Installed, Uninstalled, installed_path, supports_runtime, validate_name,
};
use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::files::{RelPath, Root, WorkspaceFiles};
use crate::{ApiError, AppState};

/// Largest install body (the original's `PLUGIN_INSTALL_BODY_MAX_BYTES` default).
pub const MAX_INSTALL_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RuntimeQuery {
    /// Keep only plugins supporting this runtime (`-` and `_` are the same).
    pub runtime: Option<String>,
}

/// `GET /plugins`: the registry, one entry per folder (sorted), without `supported_on_runtime`.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    params(RuntimeQuery),
    responses((status = 200, description = "The registry", body = [PluginInfo])))]
pub async fn list_registry(
    State(state): State<AppState>,
    Query(query): Query<RuntimeQuery>,
) -> Json<Vec<PluginInfo>> {
    Json(registry_filtered(&state, query.runtime.as_deref().unwrap_or("")).await)
}

async fn registry_filtered(state: &AppState, runtime: &str) -> Vec<PluginInfo> {
    let dir = state.config.plugins.dir.clone();
    let all = tokio::task::spawn_blocking(move || registry::list(&dir))
        .await
        .unwrap_or_default();
    if runtime.is_empty() {
        return all;
    }
    all.into_iter()
        .filter(|p| supports_runtime(p.runtimes.as_deref(), runtime))
        .collect()
}

/// `{"schemes": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Sources {
    pub schemes: Vec<&'static str>,
}

/// `GET /plugins/sources`: the install source schemes, sorted.
#[utoipa::path(get, path = "/plugins/sources", tag = "plugins",
    responses((status = 200, description = "Schemes", body = Sources)))]
pub async fn sources() -> Json<Sources> {
    Json(Sources {
        schemes: SCHEMES.to_vec(),
    })
}

/// The plugins installed in a workspace: the folders of `/configs/plugins` (plain files there
/// are not plugins, QUIRK 9), each with its manifest.
async fn installed(files: &WorkspaceFiles) -> Result<Vec<PluginInfo>, ApiError> {
    let dir = RelPath::parse(INSTALLED_DIR).expect("a valid path");
    let listing = files.list(Root::Configs, Some(&dir), 1).await?;
    let names: Vec<String> = listing
        .entries
        .into_iter()
        .filter(|e| e.dir && validate_name(&e.path).is_ok())
        .map(|e| e.path)
        .collect();
    let manifests = join_all(names.iter().map(|name| async move {
        let path = RelPath::parse(&format!("{INSTALLED_DIR}/{name}/plugin.yaml")).ok()?;
        files.read(Root::Configs, &path).await.ok()
    }))
    .await;
    Ok(names
        .iter()
        .zip(manifests)
        .map(|(name, yaml)| match yaml {
            Some(yaml) if yaml.len() as u64 <= MAX_MANIFEST_BYTES => {
                PluginInfo::from_manifest(name, &yaml)
            }
            _ => PluginInfo::bare(name),
        })
        .collect())
}

/// `GET /workspaces/{id}/plugins`: the installed plugins, each with `supported_on_runtime`.
#[utoipa::path(get, path = "/workspaces/{id}/plugins", tag = "plugins",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Installed plugins", body = [PluginInfo]),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 409, description = "The workspace's instance is unavailable", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody),
        (status = 502, description = "Workspace host unreachable", body = ErrorBody),
        (status = 504, description = "Workspace host did not answer in time", body = ErrorBody)))]
pub async fn list_installed(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<Vec<PluginInfo>>, ApiError> {
    let files = WorkspaceFiles::open(&state, &id.to_string()).await?;
    let runtime = store::plugins::runtime(&state.db, id)
        .await
        .context("query failed")?;
    let mut plugins = installed(&files).await?;
    if let Some(runtime) = runtime.filter(|r| !r.is_empty()) {
        for plugin in &mut plugins {
            plugin.supported_on_runtime =
                Some(supports_runtime(plugin.runtimes.as_deref(), &runtime));
        }
    }
    Ok(Json(plugins))
}

/// `GET /workspaces/{id}/plugins/available`: the registry filtered by the workspace's runtime
/// (unfiltered when the workspace is unknown, as the original).
#[utoipa::path(get, path = "/workspaces/{id}/plugins/available", tag = "plugins",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Registry plugins for the workspace's runtime", body = [PluginInfo]),
        (status = 400, description = "invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody)))]
pub async fn available(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Json<Vec<PluginInfo>> {
    let runtime = store::plugins::runtime(&state.db, id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    Json(registry_filtered(&state, &runtime).await)
}

/// The runtime-change preflight's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Compatibility {
    pub all_compatible: bool,
    pub compatible: Vec<PluginInfo>,
    pub incompatible: Vec<PluginInfo>,
    pub target_runtime: String,
}

/// `GET /workspaces/{id}/plugins/compatibility?runtime=`: the installed plugins split by
/// whether they support `runtime`.
#[utoipa::path(get, path = "/workspaces/{id}/plugins/compatibility", tag = "plugins",
    params(("id" = String, Path, description = "Workspace id"), RuntimeQuery),
    responses(
        (status = 200, description = "The split", body = Compatibility),
        (status = 400, description = "runtime query parameter is required / invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 409, description = "The workspace's instance is unavailable", body = ErrorBody),
        (status = 500, description = "query failed", body = ErrorBody),
        (status = 502, description = "Workspace host unreachable", body = ErrorBody),
        (status = 504, description = "Workspace host did not answer in time", body = ErrorBody)))]
pub async fn compatibility(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<RuntimeQuery>,
) -> Result<Json<Compatibility>, ApiError> {
    let target = query.runtime.unwrap_or_default();
    if target.is_empty() {
        return Err(ApiError::BadRequest(
            "runtime query parameter is required".into(),
        ));
    }
    let files = WorkspaceFiles::open(&state, &id.to_string()).await?;
    let (compatible, incompatible): (Vec<_>, Vec<_>) = installed(&files)
        .await?
        .into_iter()
        .partition(|p| supports_runtime(p.runtimes.as_deref(), &target));
    Ok(Json(Compatibility {
        all_compatible: incompatible.is_empty(),
        compatible,
        incompatible,
        target_runtime: target,
    }))
}

/// The install body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InstallRequest {
    /// `local://<name>`, `github://owner/repo#ref`, or a bare registry name.
    #[serde(default)]
    pub source: String,
    /// SHA-256 (hex) of the plugin's `plugin.yaml`, checked when given.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// `POST /workspaces/{id}/plugins`: fetches and validates the whole plugin, checks the org
/// allowlist, writes `/configs/plugins/<name>` at once (replacing any previous version whole),
/// then asks for a restart.
#[utoipa::path(post, path = "/workspaces/{id}/plugins", tag = "plugins",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = InstallRequest,
    responses(
        (status = 200, description = "Installed", body = Installed),
        (status = 400, description = "invalid request body / 'source' is required / invalid plugin source / invalid plugin name / failed to resolve plugin source", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 403, description = "plugin \"<name>\" is not in the org allowlist", body = ErrorBody),
        (status = 404, description = "workspace not found / failed to fetch plugin from <scheme> (not found)", body = ErrorBody),
        (status = 409, description = "The workspace's instance is unavailable", body = ErrorBody),
        (status = 413, description = "staged plugin exceeds size limit / has too many entries", body = ErrorBody),
        (status = 422, description = "unpinned github source / integrity or sha256 check failed / unsafe entry", body = ErrorBody),
        (status = 500, description = "failed to read staged plugin / query failed", body = ErrorBody),
        (status = 502, description = "failed to fetch plugin / workspace host unreachable", body = ErrorBody),
        (status = 503, description = "platform datastore unavailable", body = ErrorBody),
        (status = 504, description = "fetch or workspace host timed out", body = ErrorBody)))]
pub async fn install(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> Result<Json<Installed>, ApiError> {
    let invalid = || ApiError::BadRequest("invalid request body".into());
    if body.len() > MAX_INSTALL_BODY_BYTES {
        return Err(invalid());
    }
    let request: InstallRequest = serde_json::from_slice(&body).map_err(|_| invalid())?;
    // The workspace first: the original fetched (and cloned) before looking (QUIRK 5).
    let files = WorkspaceFiles::open(&state, &id.to_string()).await?;
    let staged = source::resolve_and_stage(
        &state.config.plugins,
        &request.source,
        request.sha256.as_deref(),
    )
    .await?;
    let name = staged.name.clone();
    check_allowlist(&state, id, &name).await?;
    let target = installed_path(&name)?;
    let plugin_files =
        tokio::task::spawn_blocking(move || staged.tree.read_all().map(|f| (f, staged)))
            .await
            .map_err(ApiError::internal("failed to read staged plugin"))?
            .map_err(ApiError::internal("failed to read staged plugin"))?;
    let (plugin_files, staged) = plugin_files;
    files
        .replace_dir(Root::Configs, &target, plugin_files)
        .await?;
    super::request_restart(&state, id, "plugin installed", &name).await?;
    Ok(Json(Installed {
        plugin: name,
        source: staged.source.clone(),
        status: "installed",
    }))
}

/// The org allowlist (`handlers/org_plugin_allowlist.go:19-84`), governed by the root of the
/// workspace's tree (the original used the immediate parent, QUIRK 10). A database error is a
/// 503, not an open door.
async fn check_allowlist(
    state: &AppState,
    workspace: uuid::Uuid,
    name: &str,
) -> Result<(), ApiError> {
    let Some(org) = store::plugins::org_of(&state.db, workspace)
        .await
        .context("failed to check the org allowlist")?
    else {
        return Ok(());
    };
    let allowed = store::plugins::allows(&state.db, org, name)
        .await
        .context("failed to check the org allowlist")?;
    if !allowed {
        return Err(ApiError::WithBody {
            status: StatusCode::FORBIDDEN,
            body: json!({ "error": format!("plugin {} is not in the org allowlist", go_quote(name)) }),
        });
    }
    Ok(())
}

/// Go's `%q` for the names that reach it (validated: no control characters).
fn go_quote(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
}

/// `DELETE /workspaces/{id}/plugins/{name}`: removes `/configs/plugins/<name>`, the skills its
/// manifest names and its rule blocks in `CLAUDE.md`, then asks for a restart. Not installed
/// is still 200 (as the original), but nothing is touched and no restart is asked.
#[utoipa::path(delete, path = "/workspaces/{id}/plugins/{name}", tag = "plugins",
    params(("id" = String, Path, description = "Workspace id"), ("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "Uninstalled", body = Uninstalled),
        (status = 400, description = "invalid plugin name / invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "workspace not found", body = ErrorBody),
        (status = 409, description = "The workspace's instance is unavailable", body = ErrorBody),
        (status = 500, description = "failed to remove plugin", body = ErrorBody),
        (status = 502, description = "Workspace host unreachable", body = ErrorBody),
        (status = 504, description = "Workspace host did not answer in time", body = ErrorBody)))]
pub async fn uninstall(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Path(path): Path<(String, String)>,
) -> Result<Json<Uninstalled>, ApiError> {
    let name = path.1;
    let target = installed_path(&name)?;
    let files = WorkspaceFiles::open(&state, &id.to_string()).await?;
    let manifest = RelPath::parse(&format!("{target}/plugin.yaml")).expect("a valid path");
    let skills = match files.read(Root::Configs, &manifest).await {
        Ok(yaml) => PluginInfo::from_manifest(&name, &yaml)
            .skills
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if files.remove_dir(Root::Configs, &target).await? {
        for skill in skills.iter().filter(|s| validate_name(s).is_ok()) {
            if let Ok(path) = RelPath::parse(&format!("skills/{skill}")) {
                files.remove_dir(Root::Configs, &path).await?;
            }
        }
        strip_rules(&files, &name).await?;
        super::request_restart(&state, id, "plugin uninstalled", &name).await?;
    }
    Ok(Json(Uninstalled {
        plugin: name,
        status: "uninstalled",
    }))
}

/// Drops the plugin's rule blocks from `/configs/CLAUDE.md` (the original's awk script,
/// `handlers/plugins_install_pipeline.go:302-327`).
async fn strip_rules(files: &WorkspaceFiles, name: &str) -> Result<(), ApiError> {
    let path = RelPath::parse("CLAUDE.md").expect("a valid path");
    let Ok(content) = files.read(Root::Configs, &path).await else {
        return Ok(());
    };
    let Ok(text) = String::from_utf8(content) else {
        return Ok(());
    };
    let stripped = strip_rule_blocks(&text, name);
    if stripped != text {
        files
            .write(Root::Configs, &path, Bytes::from(stripped))
            .await?;
    }
    Ok(())
}

/// A block starts at a line beginning `# Plugin: <name> /` and ends before the next
/// `# Plugin: ` line or after its second blank line.
pub fn strip_rule_blocks(text: &str, name: &str) -> String {
    let marker = format!("# Plugin: {name} /");
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    let mut blanks = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.starts_with("# Plugin: ") {
            skipping = bare.starts_with(&marker);
            blanks = 0;
            if skipping {
                continue;
            }
        } else if skipping {
            if bare.is_empty() {
                blanks += 1;
                if blanks >= 2 {
                    skipping = false;
                }
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DownloadQuery {
    /// Where to fetch the plugin from (default `local://<name>`).
    pub source: Option<String>,
}

/// `GET /workspaces/{id}/plugins/{name}/download[?source=]`: the plugin as a streamed
/// `.tar.gz` for remote agents (entries relative to the plugin's root).
#[utoipa::path(get, path = "/workspaces/{id}/plugins/{name}/download", tag = "plugins",
    params(("id" = String, Path, description = "Workspace id"), ("name" = String, Path, description = "Plugin name"), DownloadQuery),
    responses(
        (status = 200, description = "The plugin as a gzipped tar", content_type = "application/gzip", body = Vec<u8>),
        (status = 400, description = "invalid plugin name / source resolved to another plugin / invalid source / invalid workspace ID", body = ErrorBody),
        (status = 401, description = "Not this workspace's caller", body = ErrorBody),
        (status = 404, description = "failed to fetch plugin (not found)", body = ErrorBody),
        (status = 413, description = "staged plugin exceeds size limit / has too many entries", body = ErrorBody),
        (status = 422, description = "unpinned github source / integrity check failed / unsafe entry", body = ErrorBody),
        (status = 500, description = "failed to read staged plugin", body = ErrorBody),
        (status = 502, description = "failed to fetch plugin", body = ErrorBody),
        (status = 504, description = "fetch timed out", body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    WorkspaceId(_workspace): WorkspaceId,
    Path(path): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let name = path.1;
    validate_name(&name).map_err(|_| ApiError::BadRequest("invalid plugin name".into()))?;
    let raw = query
        .source
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("local://{name}"));
    let staged = source::resolve_and_stage(&state.config.plugins, &raw, None).await?;
    if staged.name != name {
        return Err(ApiError::WithBody {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "error": format!("source resolved to plugin {} but URL requested {}", go_quote(&staged.name), go_quote(&name)),
                "requested_name": name,
                "resolved_name": staged.name,
            }),
        });
    }
    let source_header = HeaderValue::from_str(&staged.source).ok();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}.tar.gz\""))
        .map_err(ApiError::internal("invalid plugin name"))?;
    let name_header =
        HeaderValue::from_str(&name).map_err(ApiError::internal("invalid plugin name"))?;
    let mut response = Body::from_stream(super::tarball::stream(staged)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert("x-plugin-name", name_header);
    if let Some(value) = source_header {
        headers.insert("x-plugin-source", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_blocks_of_the_plugin_only_are_stripped() {
        let text = "intro\n# Plugin: a / rule: x\nline\n\nmore\n\nafter\n# Plugin: b / rule: y\nkeep\n# Plugin: a / rule: z\ngone\n";
        assert_eq!(
            strip_rule_blocks(text, "a"),
            "intro\nafter\n# Plugin: b / rule: y\nkeep\n"
        );
        assert_eq!(strip_rule_blocks("x\n", "a"), "x\n");
    }
}
