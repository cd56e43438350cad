//! Validation of a create request, in the original's order, and its defaults.

use std::collections::HashMap;
use std::path::{Component, Path as FsPath, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validate::{check_field, check_workspace_dir};
use crate::json::parse_body;
use crate::templates::config::ConfigYaml;
use crate::{ApiConfig, ApiError};

const DEFAULT_RUNTIME: &str = "langgraph";

/// `POST /workspaces`' body: only `name` is required.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(default)]
pub struct CreatePayload {
    pub name: String,
    pub role: Option<String>,
    pub template: Option<String>,
    pub tier: Option<i32>,
    pub model: Option<String>,
    pub runtime: Option<String>,
    pub external: Option<bool>,
    pub url: Option<String>,
    pub delivery_mode: Option<String>,
    pub workspace_dir: Option<String>,
    pub workspace_access: Option<String>,
    pub parent_id: Option<String>,
    pub budget_limit: Option<i64>,
    pub secrets: Option<HashMap<String, String>>,
    pub max_concurrent_tasks: Option<i32>,
    pub canvas: Option<Canvas>,
}

/// Where the canvas shows the new workspace.
#[derive(Debug, Serialize, Deserialize, Default, ToSchema)]
#[serde(default)]
pub struct Canvas {
    pub x: f64,
    pub y: f64,
}

/// A validated create request.
#[derive(Debug)]
pub(crate) struct CreatePlan {
    pub(crate) payload: CreatePayload,
    pub(crate) runtime: String,
    pub(crate) model: Option<String>,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) workspace_access: String,
    pub(crate) delivery_mode: String,
    pub(crate) external: bool,
    /// The template folder to copy into the new workspace's local files.
    pub(crate) template_dir: Option<PathBuf>,
}

/// Validates a create body in the original's order and fills in the defaults.
pub(super) fn plan_create(config: &ApiConfig, body: &[u8]) -> Result<CreatePlan, ApiError> {
    let payload: CreatePayload = parse_body(body, "invalid workspace payload")?;
    plan_payload(config, payload)
}

/// Validates a parsed create request (the body of `POST /workspaces`, or a node of an org
/// template) and fills in the defaults.
pub(crate) fn plan_payload(
    config: &ApiConfig,
    payload: CreatePayload,
) -> Result<CreatePlan, ApiError> {
    check_payload(&payload)?;
    let mut runtime = payload.runtime.clone().filter(|r| !r.is_empty());
    let mut model = payload.model.clone().filter(|m| !m.is_empty());
    let mut template_dir = None;
    // `"template": ""` is no template, as in the original.
    if let Some(template) = payload.template.as_deref().filter(|t| !t.is_empty()) {
        // Checked even when runtime and model are given (the original then answered 200 with
        // an empty body and left the row stuck).
        let dir = resolve_inside(&config.configs_dir, template)
            .ok_or_else(|| ApiError::BadRequest("invalid template".to_string()))?;
        let (default_runtime, default_model) = template_defaults(&dir);
        runtime = runtime.or(default_runtime);
        model = model.or(default_model);
        template_dir = dir.is_dir().then_some(dir);
    }
    let external = payload.external == Some(true) || runtime.as_deref() == Some("external");
    let runtime = if external {
        "external".to_string()
    } else {
        runtime.unwrap_or_else(|| DEFAULT_RUNTIME.to_string())
    };
    if template_dir.is_none() && !external {
        let fallback = config.configs_dir.join(format!("{runtime}-default"));
        template_dir = fallback.is_dir().then_some(fallback);
    }
    let workspace_access = workspace_access(&payload)?;
    let delivery_mode = delivery_mode(&payload)?;
    let parent_id = match payload.parent_id.as_deref().filter(|p| !p.is_empty()) {
        Some(raw) => Some(
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::BadRequest("parent workspace not found".to_string()))?,
        ),
        None => None,
    };
    Ok(CreatePlan {
        payload,
        runtime,
        model,
        parent_id,
        workspace_access,
        delivery_mode,
        external,
        template_dir,
    })
}

/// A name, and the string fields' rules.
fn check_payload(payload: &CreatePayload) -> Result<(), ApiError> {
    if payload.name.is_empty() {
        return Err(ApiError::BadRequest(
            "invalid workspace payload".to_string(),
        ));
    }
    let fields = [
        ("name", Some(payload.name.as_str())),
        ("role", payload.role.as_deref()),
        ("model", payload.model.as_deref()),
        ("runtime", payload.runtime.as_deref()),
    ];
    if fields
        .iter()
        .any(|(field, value)| value.is_some_and(|v| check_field(field, v).is_err()))
    {
        return Err(ApiError::BadRequest("invalid workspace fields".to_string()));
    }
    Ok(())
}

/// The runtime and model a template's `config.yaml` declares; none when it is missing or
/// invalid (the workspace is still created).
fn template_defaults(dir: &FsPath) -> (Option<String>, Option<String>) {
    match ConfigYaml::read(dir) {
        Ok(config) => (
            config.default_runtime().map(str::to_string),
            config.default_model().map(str::to_string),
        ),
        Err(error) => {
            tracing::warn!(template = %dir.display(), %error, "template config unreadable; no defaults taken");
            (None, None)
        }
    }
}

/// `none` (the default), or `read_only`/`read_write` with a valid `workspace_dir`.
fn workspace_access(payload: &CreatePayload) -> Result<String, ApiError> {
    let dir = payload.workspace_dir.as_deref().filter(|d| !d.is_empty());
    if let Some(dir) = dir {
        check_workspace_dir(dir)?;
    }
    let access = payload.workspace_access.as_deref().unwrap_or("");
    match access {
        "" | "none" => Ok("none".to_string()),
        "read_only" | "read_write" if dir.is_some() => Ok(access.to_string()),
        _ => Err(ApiError::BadRequest("invalid workspace access".to_string())),
    }
}

/// `push` (the default) or `poll`.
fn delivery_mode(payload: &CreatePayload) -> Result<String, ApiError> {
    match payload.delivery_mode.as_deref().unwrap_or("") {
        "" | "push" => Ok("push".to_string()),
        "poll" => Ok("poll".to_string()),
        _ => Err(ApiError::BadRequest(
            "delivery_mode must be 'push' or 'poll'".to_string(),
        )),
    }
}

/// `root/relative` when `relative` is a plain relative path that stays inside `root` (also after
/// following symlinks, when it exists).
fn resolve_inside(root: &FsPath, relative: &str) -> Option<PathBuf> {
    let rel = FsPath::new(relative);
    let plain = !relative.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain {
        return None;
    }
    let joined = root.join(rel);
    if let (Ok(real), Ok(real_root)) = (joined.canonicalize(), root.canonicalize())
        && !real.starts_with(&real_root)
    {
        return None;
    }
    Some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_resolve_inside_the_root_only() {
        let root = FsPath::new("/nonexistent-root");
        assert!(resolve_inside(root, "langgraph").is_some());
        assert!(resolve_inside(root, "a/b").is_some());
        assert!(resolve_inside(root, "").is_none());
        assert!(resolve_inside(root, "../x").is_none());
        assert!(resolve_inside(root, "/etc").is_none());
        assert!(resolve_inside(root, "a/../../x").is_none());
    }
}
