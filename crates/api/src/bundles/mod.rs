//! Bundles: a workspace tree as one portable JSON document (the original's `.bundle.json`,
//! `internal/bundle/types.go` at 624ef4d0). `export.rs` reads a tree (rows, then each
//! workspace's real files through its files backend), `import.rs` recreates one under fresh
//! ids and unique names.

mod export;
mod import;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use export::{__path_export, export};
pub use import::{__path_import, import};

/// The default of `MAX_BUNDLE_BYTES`: the largest bundle `POST /bundles/import` reads.
pub const DEFAULT_MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;
/// The most files (skill files plus prompts) one bundle may carry.
pub const MAX_BUNDLE_FILES: usize = 10_000;
/// The most workspaces one bundle may carry.
pub const MAX_BUNDLE_WORKSPACES: usize = 1_000;

/// `MAX_BUNDLE_BYTES`.
pub fn max_bundle_bytes(config: &crate::ApiConfig) -> usize {
    config.max_bundle_bytes.unwrap_or(DEFAULT_MAX_BUNDLE_BYTES)
}

/// A workspace and its sub-workspaces, fields in the original's order. There are no secrets,
/// plugins, schedules or channels in a bundle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Bundle {
    /// `"1.0"`.
    pub schema: String,
    /// The exported workspace's id (recorded as `source_bundle_id` on import, never reused).
    pub id: String,
    pub name: String,
    /// The workspace's role.
    pub description: String,
    pub tier: i32,
    /// The `model` of the workspace's `config.yaml` (the original left it empty).
    pub model: String,
    /// `system-prompt.md`.
    pub system_prompt: String,
    /// One entry per folder under `skills/`.
    pub skills: Vec<BundleSkill>,
    /// Always `[]` (kept for the format).
    pub tools: Vec<BundleTool>,
    /// Only `config.yaml` (its raw text), when the workspace has one.
    pub prompts: BTreeMap<String, String>,
    #[schema(no_recursion)]
    pub sub_workspaces: Vec<Bundle>,
    #[schema(value_type = Option<Object>)]
    pub agent_card: serde_json::Value,
    pub author: String,
    pub version: String,
}

/// A skill: the files of `skills/<id>/`, by path relative to that folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct BundleSkill {
    pub id: String,
    pub name: String,
    /// The first line of `SKILL.md` outside its front matter that is not a heading.
    pub description: String,
    pub files: BTreeMap<String, String>,
}

/// A built-in tool reference.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct BundleTool {
    pub id: String,
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
}
