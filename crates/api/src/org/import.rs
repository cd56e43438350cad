//! The creation walk of `POST /org/import`, in the original's order
//! (`handlers/org_import.go` `createWorkspaceTree` at 624ef4d0): depth-first pre-order, each
//! node created through the same function as `POST /workspaces`
//! ([`crate::workspaces::create_workspace`], so its provisioning applies), then its memories,
//! template schedules and channels. A node that already exists under the same parent and name
//! is `skipped` and its children are walked under it, so re-importing resumes an import that
//! stopped. The first fatal error stops the walk; the answer (207) lists what was created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::Utc;
use futures_util::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::template::{
    self, MemorySeed, OrgDefaults, OrgTemplate, OrgWorkspace, TemplateRoot, expand_vars,
};
use crate::files::{RelPath, Root};
use crate::workspaces::{Canvas, CreatePayload, Seed, create_workspace, plan_payload};
use crate::{ApiError, AppState};

/// The channel adapters the original knew (`channels/registry.go:5-10`).
const CHANNEL_TYPES: [&str; 4] = ["telegram", "slack", "lark", "discord"];
/// A seeded memory is cut to this many bytes (`handlers/workspace_provision.go:196-230`).
const MAX_MEMORY_BYTES: usize = 100_000;
/// The most files copied for one pre-installed plugin.
const MAX_PLUGIN_FILES: usize = 10_000;

/// A channel not recorded, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SkippedChannel {
    pub workspace: String,
    #[serde(rename = "type")]
    pub channel_type: String,
    pub reason: String,
}

/// One node of the answer (a map in the original: keys sorted).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgImportEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_skipped: Option<Vec<SkippedChannel>>,
    pub id: Uuid,
    pub name: String,
    /// It existed already (an earlier import): nothing was created for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    pub tier: i32,
}

/// 201 (all done) or 207 (stopped by `error`).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgImported {
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub org: String,
    pub workspaces: Vec<OrgImportEntry>,
}

struct Walk<'a> {
    state: &'a AppState,
    template: &'a OrgTemplate,
    root: Option<&'a TemplateRoot>,
    entries: Vec<OrgImportEntry>,
    /// Whether the first entry was created by this import (global memories go there).
    first_created: bool,
}

/// Runs the import; never fails as a whole: a fatal error is the answer's `error`.
pub async fn run(
    state: &AppState,
    template: &OrgTemplate,
    root: Option<&TemplateRoot>,
) -> OrgImported {
    let mut walk = Walk {
        state,
        template,
        root,
        entries: Vec::new(),
        first_created: false,
    };
    let mut error = None;
    for node in &template.workspaces {
        let at = node.canvas.clone().unwrap_or_default();
        if let Err(message) = walk.node(node, None, (at.x, at.y)).await {
            error = Some(message);
            break;
        }
    }
    if walk.first_created && !template.global_memories.is_empty() {
        let first = walk.entries[0].id;
        seed_memories(state, first, &template.global_memories, Some("GLOBAL")).await;
    }
    OrgImported {
        count: walk.entries.len(),
        error,
        org: template.name.clone(),
        workspaces: walk.entries,
    }
}

impl Walk<'_> {
    fn node<'n>(
        &'n mut self,
        node: &'n OrgWorkspace,
        parent: Option<Uuid>,
        at: (f64, f64),
    ) -> BoxFuture<'n, Result<(), String>> {
        Box::pin(async move {
            let defaults = &self.template.defaults;
            let tier = match (node.tier, defaults.tier) {
                (0, 0) => crate::templates::config::default_tier(&self.state.config),
                (0, t) | (t, _) => t,
            };
            let existing = store::org::live_child(&self.state.db, parent, &node.name)
                .await
                .map_err(|_| format!("failed to look up {}", node.name))?;
            let id = match existing {
                Some(id) => {
                    // Resumed: the row is an earlier import's. Its template schedules and
                    // channels are refreshed (idempotent upserts); nothing else is written.
                    let (channels, skipped) = self.extras(node, id, &self.env(node)).await;
                    self.entries
                        .push(entry(id, node, tier, Some(true), channels, skipped));
                    id
                }
                None => self.create(node, parent, at, tier).await?,
            };
            let slots = child_slots(&node.children);
            for (child, slot) in node.children.iter().zip(slots) {
                self.node(child, Some(id), (at.0 + slot.0, at.1 + slot.1))
                    .await?;
            }
            Ok(())
        })
    }

    fn env(&self, node: &OrgWorkspace) -> BTreeMap<String, String> {
        template::node_env(self.root, &node.files_dir)
    }

    /// Creates one node through the workspaces' create path; its id.
    async fn create(
        &mut self,
        node: &OrgWorkspace,
        parent: Option<Uuid>,
        at: (f64, f64),
        tier: i32,
    ) -> Result<Uuid, String> {
        let defaults = &self.template.defaults;
        let name = &node.name;
        let env = self.env(node);
        let runtime = first(&node.runtime, &defaults.runtime).unwrap_or("langgraph");
        let model = first(&node.model, &defaults.model).map(str::to_string);
        let workspace_dir = expand_vars(&node.workspace_dir, &env).unwrap_or_default();
        let template_name = node.template.trim();
        let template_ok = !template_name.is_empty()
            && RelPath::parse(template_name).is_ok()
            && self.state.config.configs_dir.join(template_name).is_dir();
        let payload = CreatePayload {
            name: name.clone(),
            role: Some(node.role.clone()).filter(|r| !r.is_empty()),
            template: template_ok.then(|| template_name.to_string()),
            tier: Some(tier),
            model: model.clone(),
            runtime: Some(runtime.to_string()),
            external: Some(node.external),
            url: Some(node.url.clone()).filter(|u| !u.is_empty()),
            workspace_dir: Some(workspace_dir).filter(|d| !d.is_empty()),
            workspace_access: Some(node.workspace_access.clone()).filter(|a| !a.is_empty()),
            parent_id: parent.map(|p| p.to_string()),
            secrets: Some(template::to_hash_map(&env)).filter(|s| !s.is_empty()),
            max_concurrent_tasks: Some(node.max_concurrent_tasks),
            canvas: Some(Canvas { x: at.0, y: at.1 }),
            ..CreatePayload::default()
        };
        let config = self.state.config.clone();
        let plan = plan_payload(&config, payload).map_err(|error| match error {
            ApiError::BadRequest(message) => format!("workspace {name}: {message}"),
            _ => format!("workspace {name}: invalid"),
        })?;
        let seed = self.seed(node, defaults, &plan.runtime, tier, model.as_deref())?;
        let creation = match create_workspace(self.state, &plan, Some(seed)).await {
            Ok(creation) => creation,
            Err(ApiError::Conflict(_)) => {
                // Created concurrently since the lookup: resume under it.
                let id = store::org::live_child(&self.state.db, parent, name)
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        format!("workspace {name:?} conflicted on insert but is not visible")
                    })?;
                self.entries
                    .push(entry(id, node, tier, Some(true), None, None));
                return Ok(id);
            }
            Err(error) => {
                tracing::error!(workspace = %name, %error, "org import: create failed");
                return Err(format!("failed to create {name}"));
            }
        };
        let id = creation.id;
        if self.entries.is_empty() {
            self.first_created = true;
        }
        let memories = match node.initial_memories.is_empty() {
            true => &defaults.initial_memories,
            false => &node.initial_memories,
        };
        seed_memories(self.state, id, memories, None).await;
        let (channels, skipped) = self.extras(node, id, &env).await;
        self.entries
            .push(entry(id, node, creation.tier, None, channels, skipped));
        Ok(id)
    }

    /// The node's template schedules and channels.
    async fn extras(
        &self,
        node: &OrgWorkspace,
        id: Uuid,
        env: &BTreeMap<String, String>,
    ) -> (Option<Vec<String>>, Option<Vec<SkippedChannel>>) {
        let base = self.node_base(node);
        for schedule in &node.schedules {
            let prompt = match (schedule.prompt.is_empty(), self.root, base.as_deref()) {
                (false, _, _) => schedule.prompt.clone(),
                (true, Some(root), Some(base)) if !schedule.prompt_file.is_empty() => {
                    root.read(base, &schedule.prompt_file).unwrap_or_default()
                }
                _ => String::new(),
            };
            let timezone = first(&schedule.timezone, "").unwrap_or("UTC");
            if prompt.trim().is_empty() || schedule.name.is_empty() {
                tracing::warn!(schedule = %schedule.name, "org import: schedule without prompt skipped");
                continue;
            }
            let Ok(next_run_at) =
                crate::schedules::cron::next_run(&schedule.cron_expr, timezone, Utc::now())
            else {
                tracing::warn!(schedule = %schedule.name, "org import: invalid cron, schedule skipped");
                continue;
            };
            let row = store::org::TemplateSchedule {
                workspace_id: id,
                name: &schedule.name,
                cron_expr: &schedule.cron_expr,
                timezone,
                prompt: &prompt,
                enabled: schedule.enabled.unwrap_or(true),
                next_run_at,
            };
            if let Err(error) = store::org::upsert_template_schedule(&self.state.db, &row).await {
                tracing::warn!(%error, "org import: schedule not recorded");
            }
        }
        let (mut recorded, mut skipped) = (Vec::new(), Vec::new());
        for channel in &node.channels {
            let skip = |reason: String| SkippedChannel {
                workspace: node.name.clone(),
                channel_type: channel.channel_type.clone(),
                reason,
            };
            if channel.channel_type.is_empty() {
                skipped.push(skip("empty type".into()));
                continue;
            }
            if !CHANNEL_TYPES.contains(&channel.channel_type.as_str()) {
                skipped.push(skip("unknown adapter".into()));
                continue;
            }
            let mut config = serde_json::Map::new();
            let mut unresolved = Vec::new();
            for (key, value) in &channel.config {
                match expand_vars(value, env) {
                    Ok(expanded) => {
                        config.insert(key.clone(), expanded.into());
                    }
                    Err(_) => unresolved.push(value.clone()),
                }
            }
            if !unresolved.is_empty() {
                skipped.push(skip(format!("missing env: [{}]", unresolved.join(" "))));
                continue;
            }
            let users = serde_json::json!(channel.allowed_users);
            let enabled = channel.enabled.unwrap_or(true);
            let config = serde_json::Value::Object(config);
            let db = &self.state.db;
            match store::org::upsert_channel(
                db,
                id,
                &channel.channel_type,
                &config,
                enabled,
                &users,
            )
            .await
            {
                Ok(()) => recorded.push(channel.channel_type.clone()),
                Err(error) => {
                    tracing::warn!(%error, "org import: channel not recorded");
                    skipped.push(skip("failed to save channel".into()));
                }
            }
        }
        (
            Some(recorded).filter(|r| !r.is_empty()),
            Some(skipped).filter(|s| !s.is_empty()),
        )
    }

    /// The folder a node's `*_file` references resolve from: its `files_dir`, else the root.
    fn node_base(&self, node: &OrgWorkspace) -> Option<PathBuf> {
        let root = self.root?;
        Some(match node.files_dir.is_empty() {
            true => root.root.clone(),
            false => root
                .folder(&node.files_dir)
                .unwrap_or_else(|| root.root.clone()),
        })
    }

    /// The node's files: `files_dir` copied (replacing the template), then the generated
    /// `config.yaml` (unless `files_dir` brings its own), the inline system prompt and the
    /// pre-installed plugins.
    fn seed(
        &self,
        node: &OrgWorkspace,
        defaults: &OrgDefaults,
        runtime: &str,
        tier: i32,
        model: Option<&str>,
    ) -> Result<Seed, String> {
        let copy_from = match (self.root, node.files_dir.is_empty()) {
            (Some(root), false) => root.folder(&node.files_dir),
            _ => None,
        };
        let base = self.node_base(node);
        let prompt = |inline: &str, file: &str, d_inline: &str, d_file: &str| -> String {
            let read = |base: Option<&Path>, file: &str| match (self.root, base) {
                (Some(root), Some(base)) if !file.is_empty() => {
                    root.read(base, file).unwrap_or_default()
                }
                _ => String::new(),
            };
            let root_dir = self.root.map(|r| r.root.as_path());
            [
                inline.to_string(),
                read(base.as_deref(), file),
                d_inline.to_string(),
                read(root_dir, d_file),
            ]
            .into_iter()
            .find(|p| !p.trim().is_empty())
            .unwrap_or_default()
        };
        let initial = prompt(
            &node.initial_prompt,
            &node.initial_prompt_file,
            &defaults.initial_prompt,
            &defaults.initial_prompt_file,
        );
        let idle = prompt(
            &node.idle_prompt,
            &node.idle_prompt_file,
            &defaults.idle_prompt,
            &defaults.idle_prompt_file,
        );
        let interval = match (node.idle_interval_seconds, defaults.idle_interval_seconds) {
            (0, 0) => 600,
            (0, d) => d,
            (n, _) => n,
        };
        let model = model.unwrap_or(match runtime {
            "claude-code" => "sonnet",
            _ => "anthropic:claude-opus-4-7",
        });
        let routing = template::merge_routing(&defaults.category_routing, &node.category_routing);
        let mut files = Vec::new();
        let mut add = |path: &str, content: String| -> Result<(), String> {
            let rel = RelPath::parse(path)
                .map_err(|_| format!("workspace {}: invalid path {path:?}", node.name))?;
            files.push((Root::Configs, rel, Bytes::from(content)));
            Ok(())
        };
        let own_config = copy_from
            .as_ref()
            .is_some_and(|d| d.join("config.yaml").is_file());
        if !own_config {
            let mut yaml = format!(
                "name: {}\ndescription: {}\nversion: 1.0.0\ntier: {tier}\nruntime: {runtime}\nmodel: {}\nruntime_config:\n  timeout: 0\n",
                quote(&node.name),
                quote(&node.role),
                quote(model),
            );
            if !routing.is_empty() {
                yaml.push_str(&format!(
                    "category_routing: {}\n",
                    serde_json::to_string(&routing).unwrap_or_default()
                ));
            }
            if !initial.trim().is_empty() {
                yaml.push_str(&format!("initial_prompt: {}\n", quote_text(initial.trim())));
            }
            if !idle.trim().is_empty() {
                yaml.push_str(&format!(
                    "idle_interval_seconds: {interval}\nidle_prompt: {}\n",
                    quote_text(idle.trim())
                ));
            }
            add("config.yaml", yaml)?;
        }
        if !node.system_prompt.is_empty() {
            add("system-prompt.md", node.system_prompt.clone())?;
        }
        let plugins_dir = plugins_dir(&self.state.config);
        for plugin in template::merge_plugins(&defaults.plugins, &node.plugins) {
            if !valid_plugin_name(&plugin) {
                tracing::warn!(plugin, "org import: invalid plugin name skipped");
                continue;
            }
            let dir = plugins_dir.join(&plugin);
            if !dir.is_dir() {
                tracing::warn!(plugin, "org import: plugin not found, skipped");
                continue;
            }
            let max = self.state.config.max_file_bytes as u64;
            for (rel, content) in plugin_files(&dir, max) {
                add(&format!("plugins/{plugin}/{rel}"), content)?;
            }
        }
        Ok(Seed { copy_from, files })
    }
}

fn entry(
    id: Uuid,
    node: &OrgWorkspace,
    tier: i32,
    skipped: Option<bool>,
    channels: Option<Vec<String>>,
    channels_skipped: Option<Vec<SkippedChannel>>,
) -> OrgImportEntry {
    OrgImportEntry {
        channels,
        channels_skipped,
        id,
        name: node.name.clone(),
        skipped,
        tier,
    }
}

fn first<'a>(value: &'a str, fallback: &'a str) -> Option<&'a str> {
    [value, fallback].into_iter().find(|v| !v.is_empty())
}

/// A double-quoted YAML scalar on one line (a JSON string is one).
fn quote(value: &str) -> String {
    serde_json::Value::String(value.replace(['\n', '\r'], " ")).to_string()
}

/// A double-quoted YAML scalar keeping line breaks as escapes.
fn quote_text(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// Where pre-installed plugins are read from: the plugin registry (`PLUGINS_DIR`), the same folder
/// `POST /workspaces/{id}/plugins` installs from (the original read `<CONFIGS_DIR>/../plugins`,
/// `handlers/org_import.go`).
fn plugins_dir(config: &crate::ApiConfig) -> PathBuf {
    config.plugins.dir.clone()
}

/// A plugin name is one plain folder name (QUIRK 18: the original joined it unchecked).
fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The text files of a plugin folder (symlinks and oversized or binary files skipped), by
/// relative path.
fn plugin_files(dir: &Path, max_bytes: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            if out.len() >= MAX_PLUGIN_FILES {
                return out;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if crate::files::PRUNED_NAMES.contains(&name.as_str()) {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let rel = match prefix.is_empty() {
                true => name.clone(),
                false => format!("{prefix}/{name}"),
            };
            if kind.is_dir() {
                stack.push((entry.path(), rel));
            } else if kind.is_file()
                && entry.metadata().is_ok_and(|m| m.len() <= max_bytes)
                && let Ok(text) = std::fs::read_to_string(entry.path())
            {
                out.push((rel, text));
            }
        }
    }
    out
}

/// Seeds memories (scope upper-cased, empty is LOCAL, `force` for the global ones; invalid
/// scopes and empty contents skipped; cut to 100,000 bytes and secret-redacted).
async fn seed_memories(state: &AppState, id: Uuid, seeds: &[MemorySeed], force: Option<&str>) {
    for seed in seeds {
        let scope = match force {
            Some(scope) => scope.to_string(),
            None if seed.scope.is_empty() => "LOCAL".into(),
            None => seed.scope.to_uppercase(),
        };
        if seed.content.trim().is_empty() || !matches!(scope.as_str(), "LOCAL" | "TEAM" | "GLOBAL")
        {
            continue;
        }
        let mut cut = seed.content.len().min(MAX_MEMORY_BYTES);
        while !seed.content.is_char_boundary(cut) {
            cut -= 1;
        }
        let content = crate::memories::redact::redact_secrets(&seed.content[..cut]);
        if let Err(error) =
            store::memories::insert(&state.db, id, &content, &scope, "general").await
        {
            tracing::warn!(%error, "org import: memory not seeded");
        }
    }
}

/// Leaf size, gutter and paddings of the canvas (`canvas-topology.ts`; `handlers/org.go:93-194`).
const LEAF: (f64, f64) = (240.0, 130.0);
const GUTTER: f64 = 14.0;
const HEADER: f64 = 130.0;
const SIDE: f64 = 16.0;
const COLUMNS: usize = 2;

fn size(node: &OrgWorkspace) -> (f64, f64) {
    if node.children.is_empty() {
        return LEAF;
    }
    let (width, row_heights, cols) = grid(&node.children);
    let rows = row_heights.len();
    (
        2.0 * SIDE + width * cols as f64 + GUTTER * (cols as f64 - 1.0),
        HEADER + row_heights.iter().sum::<f64>() + GUTTER * (rows as f64 - 1.0) + SIDE,
    )
}

/// The widest child, each row's height, and the number of columns.
fn grid(children: &[OrgWorkspace]) -> (f64, Vec<f64>, usize) {
    let cols = children.len().clamp(1, COLUMNS);
    let sizes: Vec<(f64, f64)> = children.iter().map(size).collect();
    let width = sizes.iter().map(|s| s.0).fold(0.0, f64::max);
    let rows = sizes.len().div_ceil(cols);
    let mut heights = vec![0.0f64; rows];
    for (i, s) in sizes.iter().enumerate() {
        heights[i / cols] = heights[i / cols].max(s.1);
    }
    (width, heights, cols)
}

/// Each child's position relative to its parent.
fn child_slots(children: &[OrgWorkspace]) -> Vec<(f64, f64)> {
    if children.is_empty() {
        return Vec::new();
    }
    let (width, heights, cols) = grid(children);
    (0..children.len())
        .map(|i| {
            let row = i / cols;
            let y = HEADER + heights[..row].iter().map(|h| h + GUTTER).sum::<f64>();
            (SIDE + (i % cols) as f64 * (width + GUTTER), y)
        })
        .collect()
}
