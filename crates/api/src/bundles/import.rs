//! `POST /bundles/import`: recreates a bundle's tree under fresh ids. Everything is checked
//! before anything is written (size, paths, counts); the rows go in one transaction; each
//! workspace's files are staged beside their place and renamed in (whole or not at all); any
//! failure rolls the rows back, removes the files already placed, and names the failed node.

use std::collections::HashSet;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;
use store::workspaces::NewWorkspace;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Bundle, MAX_BUNDLE_FILES, MAX_BUNDLE_WORKSPACES, max_bundle_bytes};
use crate::error::{ApiResult, ErrorBody};
use crate::files::handlers::read_body;
use crate::files::{FilesError, RelPath, Root};
use crate::json::parse_body;
use crate::{ApiError, AppState};

const DEFAULT_RUNTIME: &str = "langgraph";

/// One created workspace, fields in the original's order (`bundle/importer.go` at 624ef4d0).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    pub workspace_id: Uuid,
    pub name: String,
    /// `provisioning`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub children: Vec<ImportResult>,
}

/// A failed import: nothing was created; `workspace` names the node that failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportFailed {
    pub error: String,
    pub workspace: String,
}

/// One node of the bundle, flattened in pre-order, checked and ready to write.
struct Node {
    id: Uuid,
    parent: Option<usize>,
    name: String,
    role: Option<String>,
    tier: i32,
    runtime: String,
    source_id: String,
    files: Vec<(Root, RelPath, Bytes)>,
}

/// `POST /bundles/import` (admin) with a bundle.
#[utoipa::path(post, path = "/bundles/import", tag = "bundles", request_body = Bundle,
    responses(
    (status = 201, description = "Created (fresh ids; a name taken at the top level gets ` (copy)`)", body = ImportResult),
    (status = 400, description = "`invalid bundle`, an unsafe path, too many entries, or paths that collide (`workspace` names the node)", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 413, description = "Over `MAX_BUNDLE_BYTES`, or a file over `MAX_FILE_BYTES`", body = ErrorBody),
    (status = 500, description = "A node failed; nothing was created", body = ImportFailed),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImportResult>)> {
    let bytes = read_body(body, max_bundle_bytes(&state.config)).await?;
    let bundle: Bundle = parse_body(&bytes, "invalid bundle")?;
    drop(bytes);
    let mut nodes = Vec::new();
    let mut file_count = 0;
    flatten(&state, &bundle, None, &mut nodes, &mut file_count)?;
    drop(bundle);
    unique_names(&state, &mut nodes).await?;
    write(&state, &nodes).await?;
    Ok((StatusCode::CREATED, Json(result(&nodes, 0))))
}

/// Checks one node and its subtree and appends them in pre-order.
fn flatten(
    state: &AppState,
    bundle: &Bundle,
    parent: Option<usize>,
    nodes: &mut Vec<Node>,
    file_count: &mut usize,
) -> ApiResult<()> {
    if nodes.len() >= MAX_BUNDLE_WORKSPACES {
        return Err(ApiError::BadRequest(format!(
            "invalid bundle: more than {MAX_BUNDLE_WORKSPACES} workspaces"
        )));
    }
    let name = bundle.name.trim();
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(ApiError::BadRequest(
            "invalid bundle: a workspace name is empty or invalid".into(),
        ));
    }
    let mut files = Vec::new();
    let mut add = |path: String, content: &str| -> ApiResult<()> {
        *file_count += 1;
        if *file_count > MAX_BUNDLE_FILES {
            return Err(ApiError::BadRequest(format!(
                "invalid bundle: more than {MAX_BUNDLE_FILES} files"
            )));
        }
        let rel = RelPath::parse(&path).map_err(|_| {
            ApiError::BadRequest(format!(
                "invalid bundle: unsafe path {path:?} in workspace {name:?}"
            ))
        })?;
        crate::files::handlers::check_size(&state.config, content)?;
        files.push((
            Root::Configs,
            rel,
            Bytes::copy_from_slice(content.as_bytes()),
        ));
        Ok(())
    };
    if !bundle.system_prompt.is_empty() {
        add("system-prompt.md".into(), &bundle.system_prompt)?;
    }
    let config_yaml = bundle.prompts.get("config.yaml");
    if let Some(config) = config_yaml {
        add("config.yaml".into(), config)?;
    }
    let mut seen = HashSet::new();
    for skill in &bundle.skills {
        // A skill id is one folder name; a file key a relative path inside it. Each is checked
        // on its own (joined, `skills/s` + `/etc/passwd` would look relative).
        let id = RelPath::parse(&skill.id)
            .ok()
            .filter(|id| id.components().count() == 1);
        let Some(id) = id else {
            return Err(ApiError::BadRequest(format!(
                "invalid bundle: unsafe path {:?} in workspace {name:?}",
                format!("skills/{}", skill.id)
            )));
        };
        for (path, content) in &skill.files {
            let Ok(rel) = RelPath::parse(path) else {
                return Err(ApiError::BadRequest(format!(
                    "invalid bundle: unsafe path {:?} in workspace {name:?}",
                    format!("skills/{}/{path}", skill.id)
                )));
            };
            let full = format!("skills/{}/{}", id.as_str(), rel.as_str());
            if !seen.insert(full.clone()) {
                continue;
            }
            add(full, content)?;
        }
    }
    let runtime = config_yaml
        .and_then(|config| runtime_of(config))
        .unwrap_or_else(|| DEFAULT_RUNTIME.to_string());
    let index = nodes.len();
    nodes.push(Node {
        id: Uuid::new_v4(),
        parent,
        name: name.to_string(),
        role: Some(bundle.description.clone()).filter(|r| !r.is_empty()),
        tier: bundle.tier,
        runtime,
        source_id: bundle.id.clone(),
        files,
    });
    for sub in &bundle.sub_workspaces {
        flatten(state, sub, Some(index), nodes, file_count)?;
    }
    Ok(())
}

/// The top-level `runtime:` of a `config.yaml`, parsed as YAML (the original scanned lines and
/// kept quotes, QUIRK 14); only a plain name is taken.
fn runtime_of(config_yaml: &str) -> Option<String> {
    let doc = serde_yaml::from_str::<serde_yaml::Value>(config_yaml).ok()?;
    let runtime = doc.get("runtime")?.as_str()?.trim();
    let plain = !runtime.is_empty()
        && runtime.len() <= 64
        && runtime
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    plain.then(|| runtime.to_string())
}

/// A root whose name is taken at the top level becomes `<name> (copy)`, then `(copy 2)`, …;
/// siblings with the same name inside the bundle are told apart the same way.
async fn unique_names(state: &AppState, nodes: &mut [Node]) -> ApiResult<()> {
    let mut taken: HashSet<(Option<usize>, String)> = HashSet::new();
    for node in nodes.iter_mut() {
        let parent = node.parent;
        let base = node.name.clone();
        if parent.is_none() {
            let existing = store::bundles::sibling_names_like(&state.db, None, &base)
                .await
                .map_err(ApiError::internal("failed to import bundle"))?;
            taken.extend(existing.into_iter().map(|name| (None, name)));
        }
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains(&(parent, name.clone())) {
            name = match n {
                1 => format!("{base} (copy)"),
                n => format!("{base} (copy {n})"),
            };
            n += 1;
        }
        taken.insert((parent, name.clone()));
        node.name = name;
    }
    Ok(())
}

/// The rows in one transaction, then each workspace's files; all undone on any failure.
async fn write(state: &AppState, nodes: &[Node]) -> ApiResult<()> {
    let failed = |node: &Node, error: String, status: StatusCode| {
        tracing::error!(workspace = %node.name, %error, "bundle import failed");
        ApiError::with_body(
            status,
            &ImportFailed {
                error: format!("failed to import workspace {:?}", node.name),
                workspace: node.name.clone(),
            },
        )
    };
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(ApiError::internal("failed to import bundle"))?;
    for node in nodes {
        let new = NewWorkspace {
            id: node.id,
            name: &node.name,
            role: node.role.as_deref(),
            tier: node.tier,
            runtime: &node.runtime,
            status: "provisioning",
            url: None,
            parent_id: node.parent.map(|p| nodes[p].id),
            workspace_dir: None,
            workspace_access: "none",
            budget_limit: None,
            max_concurrent_tasks: 1,
            delivery_mode: "push",
        };
        let inserted = async {
            store::workspaces::insert(&mut *tx, &new).await?;
            store::bundles::set_source_bundle_id(&mut *tx, node.id, &node.source_id).await?;
            store::layouts::upsert_position(&mut *tx, node.id, 0.0, 0.0).await?;
            let event =
                json!({ "name": node.name, "tier": node.tier, "source_bundle_id": node.source_id });
            store::events::record(&mut *tx, "WORKSPACE_PROVISIONING", Some(node.id), &event)
                .await?;
            Ok::<_, store::StoreError>(())
        }
        .await;
        if let Err(error) = inserted {
            return Err(match error.is_unavailable() {
                true => ApiError::datastore_unavailable(error),
                false => failed(node, error.to_string(), StatusCode::INTERNAL_SERVER_ERROR),
            });
        }
    }
    let mut placed = Vec::new();
    for node in nodes {
        if let Err(error) =
            crate::files::stage_new_workspace(&state.config, node.id, None, node.files.clone())
                .await
        {
            crate::files::remove_local_folders(&state.config, &placed).await;
            // The bundle's own paths collide (a file where another needs a folder): its fault.
            let status = match error {
                FilesError::ParentIsFile | FilesError::IsDirectory => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return Err(failed(node, error.to_string(), status));
        }
        placed.push(node.id);
    }
    if let Err(error) = tx.commit().await {
        crate::files::remove_local_folders(&state.config, &placed).await;
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        return Err(failed(&nodes[0], error.to_string(), status));
    }
    // Provisioned like any created workspace (nothing happens without a provisioner).
    for node in nodes {
        crate::provisioner::flow::spawn_provision(state, node.id);
    }
    Ok(())
}

/// The result tree of the node at `index`.
fn result(nodes: &[Node], index: usize) -> ImportResult {
    let node = &nodes[index];
    ImportResult {
        workspace_id: node.id,
        name: node.name.clone(),
        status: "provisioning",
        error: None,
        children: (0..nodes.len())
            .filter(|child| nodes[*child].parent == Some(index))
            .map(|child| result(nodes, child))
            .collect(),
    }
}
