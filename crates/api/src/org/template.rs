//! The org-template format (the original's `handlers/org.go`, `org_include.go`,
//! `org_helpers.go` at 624ef4d0): `org.yaml` with `!include`, its workspace tree, `.env`
//! secrets and the required-environment lists. Every path a template names is resolved inside
//! the template's folder through the files API's [`RelPath`] (no `..` past the root, no
//! absolute path, no symlink out of it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::files::RelPath;

/// `!include` nesting limit.
const MAX_INCLUDE_DEPTH: usize = 16;
/// The largest template file read (`org.yaml`, includes, prompts, `.env`).
pub const MAX_TEMPLATE_FILE_BYTES: u64 = 1024 * 1024;
/// The most workspaces one template may declare.
pub const MAX_TEMPLATE_WORKSPACES: usize = 1_000;

/// Why a template could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("org template not found")]
    NotFound,
    #[error("org template expansion failed: {0}")]
    Expansion(String),
    #[error("invalid org template: {0}")]
    Invalid(String),
}

/// A required or recommended variable: one name, or any one of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EnvRequirement {
    Name(String),
    AnyOf { any_of: Vec<String> },
}

impl<'de> Deserialize<'de> for EnvRequirement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            AnyOf { any_of: Vec<String> },
        }
        match Raw::deserialize(deserializer)? {
            Raw::Name(name) => Ok(EnvRequirement::Name(name)),
            Raw::AnyOf { any_of } if any_of.is_empty() => Err(serde::de::Error::custom(
                "env requirement any_of must contain at least one env var",
            )),
            Raw::AnyOf { any_of } => Ok(EnvRequirement::AnyOf { any_of }),
        }
    }
}

impl EnvRequirement {
    pub fn members(&self) -> Vec<&str> {
        match self {
            EnvRequirement::Name(name) => vec![name.as_str()],
            EnvRequirement::AnyOf { any_of } => any_of.iter().map(String::as_str).collect(),
        }
    }

    /// Satisfied by one of its members being configured.
    pub fn satisfied_by(&self, configured: &BTreeSet<String>) -> bool {
        self.members().iter().any(|m| configured.contains(*m))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct MemorySeed {
    pub content: String,
    pub scope: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgSchedule {
    pub name: String,
    pub cron_expr: String,
    pub timezone: String,
    pub prompt: String,
    pub prompt_file: String,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgChannel {
    #[serde(rename = "type")]
    pub channel_type: String,
    pub config: BTreeMap<String, String>,
    pub allowed_users: Vec<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgCanvas {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgDefaults {
    pub runtime: String,
    pub tier: i32,
    pub model: String,
    pub plugins: Vec<String>,
    pub initial_prompt: String,
    pub initial_prompt_file: String,
    pub idle_prompt: String,
    pub idle_prompt_file: String,
    pub idle_interval_seconds: i64,
    pub category_routing: BTreeMap<String, Vec<String>>,
    pub initial_memories: Vec<MemorySeed>,
    /// Not read by the original (it belongs at the top level); enforced here (QUIRK 17).
    pub required_env: Vec<EnvRequirement>,
    pub recommended_env: Vec<EnvRequirement>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgWorkspace {
    pub name: String,
    pub role: String,
    pub runtime: String,
    pub tier: i32,
    pub template: String,
    pub files_dir: String,
    pub system_prompt: String,
    pub model: String,
    pub workspace_dir: String,
    pub workspace_access: String,
    pub plugins: Vec<String>,
    pub initial_prompt: String,
    pub initial_prompt_file: String,
    pub idle_prompt: String,
    pub idle_prompt_file: String,
    pub idle_interval_seconds: i64,
    pub category_routing: BTreeMap<String, Vec<String>>,
    pub initial_memories: Vec<MemorySeed>,
    pub max_concurrent_tasks: i32,
    pub schedules: Vec<OrgSchedule>,
    pub channels: Vec<OrgChannel>,
    pub external: bool,
    pub url: String,
    pub canvas: Option<OrgCanvas>,
    pub required_env: Vec<EnvRequirement>,
    pub recommended_env: Vec<EnvRequirement>,
    #[schema(no_recursion)]
    pub children: Vec<OrgWorkspace>,
}

/// An org template (`org.yaml`, or an inline `template` of `POST /org/import`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OrgTemplate {
    pub name: String,
    pub description: String,
    pub defaults: OrgDefaults,
    pub workspaces: Vec<OrgWorkspace>,
    pub global_memories: Vec<MemorySeed>,
    pub required_env: Vec<EnvRequirement>,
    pub recommended_env: Vec<EnvRequirement>,
}

impl OrgTemplate {
    /// Every node of the tree.
    pub fn count(&self) -> usize {
        fn count(nodes: &[OrgWorkspace]) -> usize {
            nodes.iter().map(|n| 1 + count(&n.children)).sum()
        }
        count(&self.workspaces)
    }
}

/// A template folder: its canonical root, for resolving the paths it names.
#[derive(Debug, Clone)]
pub struct TemplateRoot {
    pub root: PathBuf,
}

impl TemplateRoot {
    /// The canonical folder of `dir` inside `org_dir`; `None` when `dir` is not one plain
    /// relative path inside it.
    pub fn open(org_dir: &Path, dir: &str) -> Option<TemplateRoot> {
        let rel = RelPath::parse(dir).ok()?;
        let org_dir = org_dir.canonicalize().ok()?;
        let root = org_dir.join(rel.as_str()).canonicalize().ok()?;
        root.starts_with(&org_dir).then_some(TemplateRoot { root })
    }

    /// `relative` (from the folder `base`, itself inside the root) as a path inside the root:
    /// lexically normalised, checked as a [`RelPath`], and (when it exists) still inside the
    /// root once symlinks are followed. `None` otherwise.
    pub fn resolve(&self, base: &Path, relative: &str) -> Option<PathBuf> {
        let relative = relative.trim();
        if relative.is_empty() || Path::new(relative).is_absolute() {
            return None;
        }
        let base = base.strip_prefix(&self.root).ok()?;
        let mut parts: Vec<String> = Vec::new();
        for component in base.join(relative).components() {
            match component {
                Component::Normal(part) => parts.push(part.to_str()?.to_string()),
                Component::CurDir => {}
                Component::ParentDir => {
                    parts.pop()?;
                }
                _ => return None,
            }
        }
        let rel = RelPath::parse(&parts.join("/")).ok()?;
        let path = self.root.join(rel.as_str());
        match path.canonicalize() {
            Ok(real) if !real.starts_with(&self.root) => None,
            _ => Some(path),
        }
    }

    /// A file of the template as text, at most [`MAX_TEMPLATE_FILE_BYTES`].
    pub fn read(&self, base: &Path, relative: &str) -> Result<String, String> {
        let path = self
            .resolve(base, relative)
            .ok_or_else(|| format!("path {relative:?} escapes the template"))?;
        read_capped(&path).map_err(|error| format!("{relative}: {error}"))
    }

    /// A folder of the template (`files_dir`); `None` when it is not one.
    pub fn folder(&self, relative: &str) -> Option<PathBuf> {
        self.resolve(&self.root, relative).filter(|p| p.is_dir())
    }
}

fn read_capped(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a file"));
    }
    if meta.len() > MAX_TEMPLATE_FILE_BYTES {
        return Err(std::io::Error::other("file too large"));
    }
    std::fs::read_to_string(path)
}

/// The `org.yaml` (or `org.yml`) of a template folder, expanded and decoded.
pub fn load(root: &TemplateRoot) -> Result<OrgTemplate, TemplateError> {
    let file = ["org.yaml", "org.yml"]
        .iter()
        .map(|name| root.root.join(name))
        .find(|path| path.is_file())
        .ok_or(TemplateError::NotFound)?;
    let text = read_capped(&file).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => TemplateError::NotFound,
        _ => TemplateError::Invalid(error.to_string()),
    })?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| TemplateError::Invalid(e.to_string()))?;
    let mut stack = vec![file.clone()];
    let doc = expand(root, &root.root, doc, &mut stack).map_err(TemplateError::Expansion)?;
    let template: OrgTemplate =
        serde_yaml::from_value(doc).map_err(|e| TemplateError::Invalid(e.to_string()))?;
    if template.count() > MAX_TEMPLATE_WORKSPACES {
        return Err(TemplateError::Invalid(format!(
            "more than {MAX_TEMPLATE_WORKSPACES} workspaces"
        )));
    }
    Ok(template)
}

/// Replaces every `!include <path>` scalar with the parsed (and expanded) file, relative to the
/// including file's folder; nesting up to 16, cycles refused.
fn expand(
    root: &TemplateRoot,
    base: &Path,
    value: serde_yaml::Value,
    stack: &mut Vec<PathBuf>,
) -> Result<serde_yaml::Value, String> {
    use serde_yaml::Value;
    Ok(match value {
        Value::Tagged(tagged) if tagged.tag == "include" => {
            let Value::String(relative) = tagged.value else {
                return Err("!include needs a path".into());
            };
            if stack.len() > MAX_INCLUDE_DEPTH {
                return Err("!include nested too deeply".into());
            }
            let path = root
                .resolve(base, &relative)
                .ok_or_else(|| format!("!include {relative:?} escapes the template"))?;
            let canonical = path
                .canonicalize()
                .map_err(|_| format!("!include {relative:?}: file not found"))?;
            if stack.contains(&canonical) {
                return Err(format!("!include cycle at {relative:?}"));
            }
            let text =
                read_capped(&canonical).map_err(|e| format!("!include {relative:?}: {e}"))?;
            let parsed: Value =
                serde_yaml::from_str(&text).map_err(|e| format!("!include {relative:?}: {e}"))?;
            stack.push(canonical.clone());
            let folder = canonical.parent().unwrap_or(&root.root).to_path_buf();
            let expanded = expand(root, &folder, parsed, stack)?;
            stack.pop();
            expanded
        }
        Value::Tagged(mut tagged) => {
            tagged.value = expand(root, base, tagged.value, stack)?;
            Value::Tagged(tagged)
        }
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .map(|item| expand(root, base, item, stack))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(map) => {
            let mut out = serde_yaml::Mapping::new();
            for (key, item) in map {
                out.insert(key, expand(root, base, item, stack)?);
            }
            Value::Mapping(out)
        }
        other => other,
    })
}

/// `KEY=value` lines (the original's `parseEnvFile`): trimmed, `#` comments and blank lines
/// skipped, split at the first `=`, one pair of matching quotes stripped, an `export ` prefix
/// dropped; entries with an empty key or value skipped.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let key = key.strip_prefix("export ").map_or(key, str::trim);
        let mut value = value.trim();
        for quote in ['"', '\''] {
            if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
                value = &value[1..value.len() - 1];
                break;
            }
        }
        if !key.is_empty() && !value.is_empty() {
            env.insert(key.to_string(), value.to_string());
        }
    }
    env
}

/// The secrets of a node: the template's root `.env`, then `<files_dir>/.env` over it.
pub fn node_env(root: Option<&TemplateRoot>, files_dir: &str) -> BTreeMap<String, String> {
    let Some(root) = root else {
        return BTreeMap::new();
    };
    let mut env = root
        .read(&root.root, ".env")
        .map(|text| parse_env(&text))
        .unwrap_or_default();
    if !files_dir.is_empty()
        && let Some(folder) = root.folder(files_dir)
        && let Ok(text) = root.read(&folder, ".env")
    {
        env.extend(parse_env(&text));
    }
    env
}

/// The template's own secret keys: the root `.env` and every node's `files_dir/.env`.
pub fn own_secret_keys(root: Option<&TemplateRoot>, template: &OrgTemplate) -> BTreeSet<String> {
    fn walk(root: Option<&TemplateRoot>, nodes: &[OrgWorkspace], keys: &mut BTreeSet<String>) {
        for node in nodes {
            keys.extend(node_env(root, &node.files_dir).into_keys());
            walk(root, &node.children, keys);
        }
    }
    let mut keys: BTreeSet<String> = node_env(root, "").into_keys().collect();
    walk(root, &template.workspaces, &mut keys);
    keys
}

/// The required and recommended environment of a template (`collectOrgEnv`,
/// `handlers/org_import.go:744-853`): unions over the tree, invalid names dropped, de-duplicated
/// by member set, recommended entries already required strictly removed, groups containing a
/// strict name of their tier removed, strings first then groups, sorted.
pub fn collect_env(template: &OrgTemplate) -> (Vec<EnvRequirement>, Vec<EnvRequirement>) {
    let mut required = template.required_env.clone();
    let mut recommended = template.recommended_env.clone();
    required.extend(template.defaults.required_env.iter().cloned());
    recommended.extend(template.defaults.recommended_env.iter().cloned());
    fn walk(nodes: &[OrgWorkspace], req: &mut Vec<EnvRequirement>, rec: &mut Vec<EnvRequirement>) {
        for node in nodes {
            req.extend(node.required_env.iter().cloned());
            rec.extend(node.recommended_env.iter().cloned());
            walk(&node.children, req, rec);
        }
    }
    walk(&template.workspaces, &mut required, &mut recommended);
    let required = normalize(required);
    let strict_required: BTreeSet<String> = strict(&required);
    let recommended: Vec<EnvRequirement> = normalize(recommended)
        .into_iter()
        .filter(|r| !r.members().iter().any(|m| strict_required.contains(*m)))
        .collect();
    (prune_groups(required), prune_groups(recommended))
}

fn valid_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

fn normalize(entries: Vec<EnvRequirement>) -> Vec<EnvRequirement> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for entry in entries {
        let entry = match entry {
            EnvRequirement::Name(name) if valid_env_name(&name) => EnvRequirement::Name(name),
            EnvRequirement::Name(_) => continue,
            EnvRequirement::AnyOf { any_of } => {
                let members: Vec<String> =
                    any_of.into_iter().filter(|m| valid_env_name(m)).collect();
                match members.len() {
                    0 => continue,
                    _ => EnvRequirement::AnyOf { any_of: members },
                }
            }
        };
        let mut key: Vec<String> = entry.members().iter().map(|m| m.to_string()).collect();
        key.sort();
        key.dedup();
        if seen.insert(key) {
            out.push(entry);
        }
    }
    out
}

fn strict(entries: &[EnvRequirement]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            EnvRequirement::Name(name) => Some(name.clone()),
            EnvRequirement::AnyOf { .. } => None,
        })
        .collect()
}

fn prune_groups(entries: Vec<EnvRequirement>) -> Vec<EnvRequirement> {
    let strict = strict(&entries);
    let mut names: Vec<EnvRequirement> = Vec::new();
    let mut groups: Vec<(String, EnvRequirement)> = Vec::new();
    for entry in entries {
        match &entry {
            EnvRequirement::Name(_) => names.push(entry),
            EnvRequirement::AnyOf { any_of } => {
                if any_of.iter().any(|m| strict.contains(m)) {
                    continue;
                }
                let mut key = any_of.clone();
                key.sort();
                groups.push((key.join(","), entry));
            }
        }
    }
    names.sort_by(|a, b| a.members().cmp(&b.members()));
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    names.extend(groups.into_iter().map(|(_, e)| e));
    names
}

/// The plugin list of a node (`mergePlugins`, `handlers/org_helpers.go:221-258`): the defaults
/// de-duplicated, then the node's new entries; a node entry `!name` or `-name` removes a default.
pub fn merge_plugins(defaults: &[String], node: &[String]) -> Vec<String> {
    let mut merged: Vec<String> = Vec::new();
    for plugin in defaults {
        if !merged.contains(plugin) {
            merged.push(plugin.clone());
        }
    }
    let mut removed = Vec::new();
    for entry in node {
        let opt_out = entry.trim_start_matches(['!', '-']);
        if opt_out.len() != entry.len() {
            if defaults.iter().any(|d| d == opt_out) {
                removed.push(opt_out.to_string());
            }
        } else if !merged.contains(entry) {
            merged.push(entry.clone());
        }
    }
    merged.retain(|p| !removed.contains(p));
    merged
}

/// `${VAR}` and `$VAR` from `env` only (never the server's own environment, QUIRK 27);
/// `Err` with the unresolved names.
pub fn expand_vars(value: &str, env: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
    let mut out = String::new();
    let mut missing = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match env.get(name) {
            Some(v) => out.push_str(v),
            None => missing.push(name.to_string()),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    match missing.is_empty() {
        true => Ok(out),
        false => Err(missing),
    }
}

/// `category_routing` of a node: the defaults with the node's keys replacing them (an empty
/// list removes the key).
pub fn merge_routing(
    defaults: &BTreeMap<String, Vec<String>>,
    node: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut merged = defaults.clone();
    for (key, roles) in node {
        if roles.is_empty() {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), roles.clone());
        }
    }
    merged
}

/// A plain map for the few places that want one.
pub fn to_hash_map(env: &BTreeMap<String, String>) -> HashMap<String, String> {
    env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_like_the_original() {
        let env = parse_env("# c\nA=1\nB = \"two\"\nexport C='3'\nD=\n=x\nnoequals\n");
        assert_eq!(env.get("A").unwrap(), "1");
        assert_eq!(env.get("B").unwrap(), "two");
        assert_eq!(env.get("C").unwrap(), "3");
        assert!(!env.contains_key("D"));
    }

    #[test]
    fn plugins_merge_with_opt_outs() {
        let d = vec!["a".to_string(), "b".into(), "a".into()];
        let n = vec!["!b".to_string(), "c".into(), "-zz".into()];
        assert_eq!(merge_plugins(&d, &n), vec!["a".to_string(), "c".into()]);
    }

    #[test]
    fn vars_expand_from_the_template_env_only() {
        let env = BTreeMap::from([("T".to_string(), "tok".to_string())]);
        assert_eq!(expand_vars("x-${T}-$T", &env).unwrap(), "x-tok-tok");
        assert_eq!(expand_vars("${HOME}", &env).unwrap_err(), vec!["HOME"]);
        assert_eq!(expand_vars("cost $5", &env).unwrap_err(), vec!["5"]);
    }

    #[test]
    fn env_requirements_collect_and_sort() {
        let t: OrgTemplate = serde_yaml::from_str(
            "required_env: [B, {any_of: [X, Y]}, A, {any_of: [A, Z]}, lower]\nrecommended_env: [A, C]\nworkspaces: [{name: w, required_env: [B]}]",
        )
        .unwrap();
        let (req, rec) = collect_env(&t);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!(["A", "B", {"any_of": ["X", "Y"]}])
        );
        assert_eq!(
            serde_json::to_value(&rec).unwrap(),
            serde_json::json!(["C"])
        );
    }
}
