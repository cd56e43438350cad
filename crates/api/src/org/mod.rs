//! Org templates: `GET /org/templates` lists the folders of `ORG_TEMPLATES_DIR`, and
//! `POST /org/import` creates a template's workspace tree (`import.rs`) after the
//! required-environment preflight. `template.rs` reads the format.

mod import;
pub mod template;

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::files::RelPath;
use crate::files::handlers::{batch_body_limit, read_body};
use crate::json::parse_body;
use crate::{ApiError, AppState};
pub use import::{OrgImportEntry, OrgImported, SkippedChannel};
use template::{EnvRequirement, OrgTemplate, TemplateError, TemplateRoot};

/// One org template of `GET /org/templates` (the original printed a map: keys sorted).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgTemplateSummary {
    pub description: String,
    /// The folder name, what `POST /org/import` takes as `dir`.
    pub dir: String,
    pub name: String,
    pub recommended_env: Vec<EnvRequirement>,
    pub required_env: Vec<EnvRequirement>,
    /// Every node of the tree.
    pub workspaces: usize,
}

/// `GET /org/templates` (admin): every folder of `ORG_TEMPLATES_DIR` whose `org.yaml` (or
/// `org.yml`) loads, sorted; `[]` when the folder is unreadable.
#[utoipa::path(get, path = "/org/templates", tag = "org", responses(
    (status = 200, description = "The org templates", body = Vec<OrgTemplateSummary>),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<OrgTemplateSummary>>> {
    let org_dir = state.config.org_templates_dir.clone();
    let summaries = tokio::task::spawn_blocking(move || list_templates(&org_dir))
        .await
        .map_err(ApiError::internal("failed to list org templates"))?;
    Ok(Json(summaries))
}

fn list_templates(org_dir: &std::path::Path) -> Vec<OrgTemplateSummary> {
    let Ok(entries) = std::fs::read_dir(org_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    dirs.sort();
    let mut summaries = Vec::new();
    for dir in dirs {
        let Some(root) = TemplateRoot::open(org_dir, &dir) else {
            continue;
        };
        match template::load(&root) {
            Ok(template) => {
                let (required_env, recommended_env) = template::collect_env(&template);
                summaries.push(OrgTemplateSummary {
                    description: template.description.clone(),
                    dir,
                    name: template.name.clone(),
                    recommended_env,
                    required_env,
                    workspaces: template.count(),
                });
            }
            Err(TemplateError::NotFound) => {
                if root.root.join(".git").exists() {
                    tracing::warn!(
                        dir,
                        "org template folder has .git but no org.yaml (half-finished checkout?)"
                    );
                }
            }
            Err(error) => tracing::warn!(dir, %error, "org template skipped"),
        }
    }
    summaries
}

/// `POST /org/import`'s body: a template folder, or an inline template (`dir` wins).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgImportBody {
    pub dir: Option<String>,
    pub template: Option<OrgTemplate>,
}

/// 412: required variables neither in the global secrets nor in the template's own `.env`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MissingEnv {
    pub error: &'static str,
    pub missing_env: Vec<EnvRequirement>,
    pub required_env: Vec<EnvRequirement>,
    pub suggestion: &'static str,
    pub template: String,
}

/// `POST /org/import` (admin).
#[utoipa::path(post, path = "/org/import", tag = "org", request_body = OrgImportBody,
    responses(
    (status = 201, description = "Every node processed (`skipped` ones existed already)", body = OrgImported),
    (status = 207, description = "Stopped by a fatal error: what was created, and `error`", body = OrgImported),
    (status = 400, description = "Invalid body, directory or template", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 404, description = "`org template not found: <dir>`", body = ErrorBody),
    (status = 412, description = "Required environment missing", body = MissingEnv),
    (status = 413, description = "Body too large", body = ErrorBody),
    (status = 500, description = "Could not verify the environment", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    body: Body,
) -> ApiResult<(StatusCode, Json<OrgImported>)> {
    let bytes = read_body(body, batch_body_limit(&state.config)).await?;
    let body: OrgImportBody = parse_body(&bytes, "invalid request body")?;
    let (template, root) = load_requested(&state, body).await?;
    preflight(&state, &template, root.as_ref()).await?;
    let imported = import::run(&state, &template, root.as_ref()).await;
    let status = match imported.error {
        Some(_) => StatusCode::MULTI_STATUS,
        None => StatusCode::CREATED,
    };
    Ok((status, Json(imported)))
}

/// The template a request names, with its folder (none for an inline one).
async fn load_requested(
    state: &AppState,
    body: OrgImportBody,
) -> ApiResult<(OrgTemplate, Option<TemplateRoot>)> {
    match body.dir.filter(|d| !d.is_empty()) {
        Some(dir) => {
            if RelPath::parse(&dir).is_err() {
                return Err(ApiError::BadRequest("invalid org directory".into()));
            }
            let org_dir: PathBuf = state.config.org_templates_dir.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let root = TemplateRoot::open(&org_dir, &dir)
                    .ok_or(TemplateError::NotFound)
                    .map_err(|e| (e, dir.clone()))?;
                template::load(&root)
                    .map(|template| (template, Some(root)))
                    .map_err(|e| (e, dir))
            })
            .await
            .map_err(ApiError::internal("failed to load org template"))?;
            loaded.map_err(|(error, dir)| match error {
                TemplateError::NotFound => {
                    ApiError::NotFound(format!("org template not found: {dir}"))
                }
                TemplateError::Expansion(detail) => {
                    tracing::warn!(dir, detail, "org template expansion failed");
                    ApiError::BadRequest("org template expansion failed".into())
                }
                TemplateError::Invalid(detail) => {
                    tracing::warn!(dir, detail, "invalid org template");
                    ApiError::BadRequest("invalid org template".into())
                }
            })
        }
        None => match body.template.filter(|t| !t.name.is_empty()) {
            Some(template) if template.count() > template::MAX_TEMPLATE_WORKSPACES => {
                Err(ApiError::BadRequest("invalid org template".into()))
            }
            Some(template) => Ok((template, None)),
            None => Err(ApiError::BadRequest("provide 'dir' or 'template'".into())),
        },
    }
}

/// 412 unless every required entry is met by a global secret or the template's own `.env`.
async fn preflight(
    state: &AppState,
    template: &OrgTemplate,
    root: Option<&TemplateRoot>,
) -> ApiResult<()> {
    let (required, _) = template::collect_env(template);
    if required.is_empty() {
        return Ok(());
    }
    let mut configured: BTreeSet<String> = store::org::configured_global_keys(&state.db)
        .await
        .context("could not verify required environment variables; try again")?
        .into_iter()
        .collect();
    configured.extend(template::own_secret_keys(root, template));
    let missing: Vec<EnvRequirement> = required
        .iter()
        .filter(|r| !r.satisfied_by(&configured))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::with_body(
        StatusCode::PRECONDITION_FAILED,
        &MissingEnv {
            error: "missing required environment variables",
            missing_env: missing,
            required_env: required,
            suggestion: "set these as global secrets (POST /settings/secrets) before importing",
            template: template.name.clone(),
        },
    ))
}
