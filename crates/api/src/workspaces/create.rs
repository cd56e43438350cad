//! `POST /workspaces`: one transaction inserting the row, its secrets, layout, event and (for an
//! external agent) its first token.

use axum::Json;
use axum::body::Bytes;

use crate::files::{RelPath, Root};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::json;
use store::StoreError;
use store::workspaces::NewWorkspace;
use utoipa::ToSchema;
use uuid::Uuid;

use super::plan::{CreatePayload, CreatePlan, plan_create};
use crate::error::{ErrorBody, StoreContext};
use crate::templates::config::default_tier;
use crate::{ApiError, AppState};

/// The 500 message of any failed step of a create (the original's).
const FAILED: &str = "failed to create workspace";

/// 201 of a create. A workspace this server provisions answers `awareness_namespace`, `id`,
/// `status`, `workspace_access`; an external one `external`, `id`, `status` and, while it awaits
/// its agent, `connection`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awareness_namespace: Option<String>,
    /// The original marshals it from a map: keys sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::external::ConnectionInfo>)]
    pub connection: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    pub id: Uuid,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_access: Option<String>,
}

/// `POST /workspaces` (admin).
#[utoipa::path(post, path = "/workspaces", tag = "workspaces", request_body = CreatePayload,
    responses(
    (status = 201, description = "Created", body = Created),
    (status = 400, description = "Invalid payload", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 409, description = "Duplicate sibling name", body = ErrorBody),
    (status = 413, description = "Body too large"),
    (status = 500, description = "Create failed", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    // Template resolution reads the disk: off the async threads.
    let config = state.config.clone();
    let plan = tokio::task::spawn_blocking(move || plan_create(&config, &body))
        .await
        .map_err(ApiError::internal(FAILED))??;
    let creation = create_workspace(&state, &plan, None).await?;
    let id = creation.id;
    if plan.external {
        let created = Created {
            awareness_namespace: None,
            connection: creation.token.map(|token| {
                crate::external::connection_for_create(&state.config, &headers, &uri, id, &token)
            }),
            external: Some(true),
            id,
            status: creation.status,
            workspace_access: None,
        };
        return Ok((StatusCode::CREATED, Json(created)));
    }
    let created = Created {
        awareness_namespace: Some(format!("workspace:{id}")),
        connection: None,
        external: None,
        id,
        status: "provisioning",
        workspace_access: Some(plan.workspace_access.clone()),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Files a caller supplies for a new workspace instead of the default seeding: `copy_from`
/// (replacing the plan's template folder when set), then `files` over it, placed at once.
#[derive(Debug, Default)]
pub(crate) struct Seed {
    pub(crate) copy_from: Option<std::path::PathBuf>,
    pub(crate) files: Vec<(Root, RelPath, Bytes)>,
}

/// What a create made.
#[derive(Debug)]
pub(crate) struct Creation {
    pub(crate) id: Uuid,
    pub(crate) status: &'static str,
    pub(crate) tier: i32,
    /// The first token of an external workspace awaiting its agent.
    pub(crate) token: Option<String>,
}

/// THE way a workspace is created (`POST /workspaces`, org import): the row with its secrets,
/// layout and events in one transaction, then its files (`seed`, or the template's / a
/// generated `config.yaml`), then whatever provisioning applies.
pub(crate) async fn create_workspace(
    state: &AppState,
    plan: &CreatePlan,
    seed: Option<Seed>,
) -> Result<Creation, ApiError> {
    let payload = &plan.payload;
    let id = Uuid::new_v4();
    // Only an external workspace has a URL of its own; others get theirs on registration.
    let url = payload
        .url
        .as_deref()
        .filter(|u| plan.external && !u.is_empty());
    let status = match (plan.external, url) {
        (false, _) => "provisioning",
        (true, Some(_)) => "online",
        (true, None) => "awaiting_agent",
    };
    let new = NewWorkspace {
        id,
        name: &payload.name,
        role: payload.role.as_deref(),
        tier: payload
            .tier
            .filter(|t| *t != 0)
            .unwrap_or_else(|| default_tier(&state.config)),
        runtime: &plan.runtime,
        status,
        url,
        parent_id: plan.parent_id,
        workspace_dir: payload.workspace_dir.as_deref().filter(|d| !d.is_empty()),
        workspace_access: &plan.workspace_access,
        budget_limit: payload.budget_limit,
        max_concurrent_tasks: payload.max_concurrent_tasks.unwrap_or(0).max(1),
        delivery_mode: &plan.delivery_mode,
    };
    let token = insert(state, plan, &new).await?;
    if !plan.external {
        match seed {
            None => seed_files(state, plan, &new).await,
            Some(seed) => {
                let template = seed.copy_from.or_else(|| plan.template_dir.clone());
                let staged =
                    crate::files::stage_new_workspace(&state.config, id, template, seed.files);
                if let Err(error) = staged.await {
                    tracing::warn!(workspace_id = %id, %error, "seeding the workspace's files failed");
                }
            }
        }
        crate::provisioner::flow::spawn_provision(state, id);
    }
    Ok(Creation {
        id,
        status,
        tier: new.tier,
        token,
    })
}

/// The new workspace's files: its template's, or the `config.yaml` the original's provisioner
/// generated for a workspace without one. Best effort, like the original's provisioning: the
/// row exists either way.
async fn seed_files(state: &AppState, plan: &CreatePlan, new: &NewWorkspace<'_>) {
    let id = new.id;
    let seeded = match &plan.template_dir {
        Some(template_dir) => crate::files::seed_from_template(&state.config, id, template_dir)
            .await
            .map(drop)
            .map_err(|error| format!("{error:?}")),
        None => write_default_config(state, plan, new).await,
    };
    if let Err(error) = seeded {
        tracing::warn!(workspace_id = %id, %error, "seeding the workspace's files failed");
    }
}

async fn write_default_config(
    state: &AppState,
    plan: &CreatePlan,
    new: &NewWorkspace<'_>,
) -> Result<(), String> {
    let content = default_config_yaml(plan, new.tier);
    let files = crate::files::WorkspaceFiles::open(state, &new.id.to_string())
        .await
        .map_err(|error| format!("{error:?}"))?;
    let path = RelPath::parse("config.yaml").map_err(|error| error.to_string())?;
    files
        .write(Root::Configs, &path, Bytes::from(content))
        .await
        .map_err(|error| error.to_string())
}

/// The original's generated `config.yaml` (`ensureDefaultConfig` in
/// `handlers/workspace_provision.go` at 624ef4d0): name, role as description, tier, runtime and
/// model, the strings double-quoted with line breaks removed so no value can inject a key.
pub(super) fn default_config_yaml(plan: &CreatePlan, tier: i32) -> String {
    let runtime = plan.runtime.as_str();
    let model = match plan.model.as_deref() {
        Some(model) => model,
        None if runtime == "claude-code" => "sonnet",
        None => "anthropic:claude-opus-4-7",
    };
    let payload = &plan.payload;
    let mut yaml = format!(
        "name: {}\ndescription: {}\nversion: 1.0.0\ntier: {tier}\nruntime: {runtime}\nmodel: {}\n",
        yaml_quote(&payload.name),
        yaml_quote(payload.role.as_deref().unwrap_or("")),
        yaml_quote(model),
    );
    if !matches!(runtime, "langgraph" | "deepagents") {
        yaml.push_str("runtime_config:\n  timeout: 0\n");
    }
    yaml
}

/// A double-quoted YAML scalar (a JSON string is one) without line breaks.
fn yaml_quote(value: &str) -> String {
    let flat = value.replace('\n', " ").replace('\r', "");
    serde_json::Value::String(flat).to_string()
}

/// Writes the workspace and everything that comes with it in one transaction; the token of an
/// external workspace awaiting its agent.
async fn insert(
    state: &AppState,
    plan: &CreatePlan,
    new: &NewWorkspace<'_>,
) -> Result<Option<String>, ApiError> {
    let (payload, id) = (&plan.payload, new.id);
    let mut tx = state.db.begin().await.context(FAILED)?;
    store::workspaces::insert(&mut *tx, new)
        .await
        .context(FAILED)?;
    for (key, value) in payload.secrets.iter().flatten() {
        store::secrets::upsert(&mut *tx, &state.crypto, id, key, value)
            .await
            .map_err(|error| {
                let step = match error {
                    StoreError::Crypto(_) => "encrypt",
                    _ => "save",
                };
                ApiError::from_store(error, format!("failed to {step} secret: {key}"))
            })?;
    }
    if let Some(model) = plan.model.as_deref() {
        let crypto = &state.crypto;
        store::secrets::upsert(&mut *tx, crypto, id, store::secrets::MODEL_KEY, model)
            .await
            .context(FAILED)?;
        if let Some(provider) = super::model::provider_for_model(model) {
            store::secrets::upsert(&mut *tx, crypto, id, store::secrets::PROVIDER_KEY, provider)
                .await
                .context(FAILED)?;
        }
    }
    let (x, y) = payload.canvas.as_ref().map_or((0.0, 0.0), |c| (c.x, c.y));
    store::layouts::upsert_position(&mut *tx, id, x, y)
        .await
        .context(FAILED)?;
    let event = json!({ "name": payload.name, "tier": new.tier, "runtime": plan.runtime });
    store::events::record(&mut *tx, "WORKSPACE_PROVISIONING", Some(id), &event)
        .await
        .context(FAILED)?;
    // An external workspace's first status is an event too (`handlers/workspace.go` Create at
    // 624ef4d0).
    let first_status = match new.status {
        "online" => Some("WORKSPACE_ONLINE"),
        "awaiting_agent" => Some("WORKSPACE_AWAITING_AGENT"),
        _ => None,
    };
    if let Some(event_type) = first_status {
        let announced = json!({ "name": payload.name, "external": true });
        store::events::record(&mut *tx, event_type, Some(id), &announced)
            .await
            .context(FAILED)?;
    }
    let token = match new.status {
        "awaiting_agent" => Some(
            store::tokens::mint_workspace_token(&mut *tx, id)
                .await
                .context(FAILED)?,
        ),
        _ => None,
    };
    tx.commit().await.context(FAILED)?;
    Ok(token)
}
