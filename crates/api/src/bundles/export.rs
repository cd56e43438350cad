//! `GET /bundles/export/{id}`: the workspace, its live sub-workspaces, and each one's
//! `system-prompt.md`, `config.yaml` and `skills/` read from ITS files backend (local folder or
//! EC2), never from an unrelated template (the original's host fallback, QUIRK 12).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use futures_util::future::{BoxFuture, try_join_all};
use uuid::Uuid;

use super::{Bundle, BundleSkill};
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::files::{FilesError, RelPath, Root, WorkspaceFiles};
use crate::{ApiError, AppState};

/// The deepest a skill's files are read (the files API's deepest listing).
const SKILL_DEPTH: u32 = 5;

/// `GET /bundles/export/{id}` (admin).
#[utoipa::path(get, path = "/bundles/export/{id}", tag = "bundles",
    params(("id" = String, Path, description = "Workspace id")),
    responses(
    (status = 200, description = "The workspace tree as a bundle", body = Bundle),
    (status = 400, description = "The workspace's files cannot be read as a tree (a file where a folder is expected)", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 404, description = "`bundle not found`", body = ErrorBody),
    (status = 409, description = "The workspace's instance is unavailable", body = ErrorBody),
    (status = 500, description = "Reading the files failed", body = ErrorBody),
    (status = 502, description = "The workspace's instance failed", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody),
    (status = 504, description = "The workspace's instance timed out", body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Bundle>> {
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    Ok(Json(export_tree(&state, id).await?))
}

fn not_found() -> ApiError {
    ApiError::NotFound("bundle not found".into())
}

/// One workspace and, concurrently, its live children.
pub fn export_tree(state: &AppState, id: Uuid) -> BoxFuture<'_, ApiResult<Bundle>> {
    Box::pin(async move {
        let node = store::bundles::node(&state.db, id)
            .await
            .context("failed to export bundle")?
            .ok_or_else(not_found)?;
        let children = store::workspaces::live_children(&state.db, id)
            .await
            .context("failed to export bundle")?;
        let files = read_files(state, id);
        let subs = try_join_all(children.iter().map(|child| export_tree(state, child.id)));
        let ((system_prompt, config_yaml, skills), sub_workspaces) =
            futures_util::try_join!(files, subs)?;
        let mut prompts = BTreeMap::new();
        let model = config_yaml.as_deref().map(model_of).unwrap_or_default();
        if let Some(config_yaml) = config_yaml {
            prompts.insert("config.yaml".to_string(), config_yaml);
        }
        Ok(Bundle {
            schema: "1.0".into(),
            id: id.to_string(),
            name: node.name,
            description: node.role,
            tier: node.tier,
            model,
            system_prompt: system_prompt.unwrap_or_default(),
            skills,
            tools: Vec::new(),
            prompts,
            sub_workspaces,
            agent_card: node.agent_card.unwrap_or(serde_json::Value::Null),
            author: String::new(),
            version: "1.0.0".into(),
        })
    })
}

type Files = (Option<String>, Option<String>, Vec<BundleSkill>);

/// The workspace's prompt, config and skills; missing files are absent, not errors.
async fn read_files(state: &AppState, id: Uuid) -> ApiResult<Files> {
    let files =
        WorkspaceFiles::open(state, &id.to_string())
            .await
            .map_err(|error| match error {
                ApiError::NotFound(_) => not_found(),
                other => other,
            })?;
    let system_prompt = read_text(&files, "system-prompt.md").await?;
    let config_yaml = read_text(&files, "config.yaml").await?;
    let skills = read_skills(&files).await?;
    Ok((system_prompt, config_yaml, skills))
}

/// A text file; `None` when missing, or not UTF-8 (a bundle carries text only: a binary file
/// is left out rather than corrupted, QUIRK 13).
async fn read_text(files: &WorkspaceFiles, path: &str) -> ApiResult<Option<String>> {
    let path = RelPath::parse(path).map_err(ApiError::internal("invalid path"))?;
    match files.read(Root::Configs, &path).await {
        Ok(bytes) => Ok(String::from_utf8(bytes).ok()),
        Err(error) if absent(&error) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Not part of the bundle: missing (on either backend), a folder where a file was expected, or
/// a symlink out of the workspace.
fn absent(error: &FilesError) -> bool {
    matches!(
        error,
        FilesError::NotFound
            | FilesError::IsDirectory
            | FilesError::Escape
            | FilesError::Remote(eic_pool::EicError::NotFound)
    )
}

/// One skill per folder under `skills/`, with every text file in it (plain files directly
/// under `skills/` are not skills).
async fn read_skills(files: &WorkspaceFiles) -> ApiResult<Vec<BundleSkill>> {
    let skills_dir = RelPath::parse("skills").map_err(ApiError::internal("invalid path"))?;
    let listing = match files
        .list(Root::Configs, Some(&skills_dir), SKILL_DEPTH)
        .await
    {
        Ok(listing) => listing,
        Err(error) if absent(&error) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut skills: BTreeMap<String, BundleSkill> = BTreeMap::new();
    for entry in &listing.entries {
        let Some((skill, rest)) = entry.path.split_once('/') else {
            if entry.dir {
                skills
                    .entry(entry.path.clone())
                    .or_insert_with(|| BundleSkill {
                        id: entry.path.clone(),
                        name: entry.path.clone(),
                        ..BundleSkill::default()
                    });
            }
            continue;
        };
        if entry.dir {
            continue;
        }
        let path = RelPath::parse(&format!("skills/{}", entry.path))
            .map_err(ApiError::internal("invalid path"))?;
        let content = match files.read(Root::Configs, &path).await {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => continue,
            },
            Err(error) if absent(&error) => continue,
            Err(error) => return Err(error.into()),
        };
        let skill = skills
            .entry(skill.to_string())
            .or_insert_with(|| BundleSkill {
                id: skill.to_string(),
                name: skill.to_string(),
                ..BundleSkill::default()
            });
        if rest == "SKILL.md" {
            skill.description = skill_description(&content);
        }
        skill.files.insert(rest.to_string(), content);
    }
    Ok(skills.into_values().collect())
}

/// The first non-empty line of `SKILL.md` outside its `---` front matter that is not a heading
/// (`bundle/exporter.go` at 624ef4d0).
pub(crate) fn skill_description(skill_md: &str) -> String {
    let mut in_front_matter = false;
    for (index, line) in skill_md.lines().enumerate() {
        let line = line.trim();
        if line == "---" && (index == 0 || in_front_matter) {
            in_front_matter = !in_front_matter;
            continue;
        }
        if in_front_matter || line.is_empty() || line.starts_with('#') {
            continue;
        }
        return line.to_string();
    }
    String::new()
}

/// The `model:` of a `config.yaml`, if it has one.
fn model_of(config_yaml: &str) -> String {
    serde_yaml::from_str::<serde_yaml::Value>(config_yaml)
        .ok()
        .and_then(|doc| {
            doc.get("model")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_skips_front_matter_and_headings() {
        let md = "---\nname: x\n---\n# Title\n\nDoes things.\nMore.";
        assert_eq!(skill_description(md), "Does things.");
        assert_eq!(skill_description("# Only a title"), "");
    }
}
