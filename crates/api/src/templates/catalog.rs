//! Templates: the folders of `CONFIGS_DIR` holding a `config.yaml`, listed with the fields the
//! canvas reads, and imported from a map of files.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, ConfigYaml, DEFAULT_TIER, nullable};
use crate::files::RelPath;

/// The model a generated `config.yaml` names (the original's default).
const DEFAULT_MODEL: &str = "anthropic:claude-haiku-4-5-20251001";
/// Prefix of the staging folder an import is written into before it is renamed into place.
const STAGING_PREFIX: &str = ".import-";

/// One element of `GET /templates`, fields in the original's order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TemplateSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tier: i64,
    pub runtime: String,
    pub model: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_env: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provider_registry: Vec<ProviderSpec>,
    /// `null` when the template has no `skills:` key, as the original.
    pub skills: Option<Vec<String>>,
    pub skill_count: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub provision_timeout_seconds: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// A model a template supports (`runtime_config.models[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelSpec {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub required_env: Vec<String>,
}

/// A provider a template declares (top-level `providers:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderSpec {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth_mode: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub model_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "is_empty_value")]
    pub model_aliases: serde_json::Value,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub base_url: String,
    #[serde(default, skip_serializing_if = "is_empty_value")]
    pub auth_env: serde_json::Value,
}

fn is_empty_value(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

impl TemplateSummary {
    fn from_config(id: String, config: ConfigYaml) -> TemplateSummary {
        let model = config.listed_model().to_string();
        TemplateSummary {
            id,
            name: config.name,
            description: config.description,
            tier: config.tier,
            runtime: config.runtime,
            model,
            models: config.runtime_config.models,
            required_env: config.runtime_config.required_env,
            providers: config.runtime_config.providers,
            provider_registry: config.providers,
            skill_count: config.skills.as_ref().map_or(0, Vec::len),
            skills: config.skills,
            provision_timeout_seconds: config.runtime_config.provision_timeout_seconds,
        }
    }
}

/// Every folder of `configs_dir` with a parseable `config.yaml`, by folder name; a missing
/// `configs_dir` lists nothing, and a template whose YAML does not parse is logged and skipped.
pub fn list(configs_dir: &Path) -> Vec<TemplateSummary> {
    let Ok(entries) = fs::read_dir(configs_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with(STAGING_PREFIX))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            match ConfigYaml::read(&configs_dir.join(&name)) {
                Ok(config) => Some(TemplateSummary::from_config(name, config)),
                Err(ConfigError::Missing) => None,
                Err(ConfigError::Invalid(error)) => {
                    tracing::warn!(template = %name, %error, "skipping template with invalid config.yaml");
                    None
                }
            }
        })
        .collect()
}

/// A display name as a folder name: spaces and `-` become `-`, ASCII letters are lowercased,
/// only `[a-z0-9_-]` is kept, `..` removed, and an empty result is `unnamed` (the original's rule).
pub fn normalize_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter_map(|c| match c {
            ' ' | '-' => Some('-'),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' | '_' => Some(c),
            _ => None,
        })
        .collect();
    let result = kept.replace("..", "");
    if result.is_empty() {
        "unnamed".into()
    } else {
        result
    }
}

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("template already exists")]
    Exists,
    #[error("failed to write template")]
    Io(#[from] io::Error),
}

/// Writes `files` as the template `dir_name`, all or nothing: into a staging folder first, then
/// renamed into place. Generates a `config.yaml` when the files have none.
pub fn import(
    configs_dir: &Path,
    dir_name: &str,
    display_name: &str,
    files: &[(RelPath, String)],
) -> Result<(), ImportError> {
    let destination = configs_dir.join(dir_name);
    if destination.exists() {
        return Err(ImportError::Exists);
    }
    fs::create_dir_all(configs_dir)?;
    let staging = configs_dir.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let result = write_staging(&staging, display_name, files).and_then(|()| {
        if destination.exists() {
            return Err(ImportError::Exists);
        }
        fs::rename(&staging, &destination).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => ImportError::Exists,
            _ => ImportError::Io(e),
        })
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn write_staging(
    staging: &Path,
    display_name: &str,
    files: &[(RelPath, String)],
) -> Result<(), ImportError> {
    create_private_dir(staging)?;
    for (path, content) in files {
        let target: PathBuf = staging.join(path.as_str());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        write_private_file(&target, content.as_bytes())?;
    }
    if !files.iter().any(|(path, _)| path.as_str() == "config.yaml") {
        let config = default_config(display_name, files);
        write_private_file(&staging.join("config.yaml"), config.as_bytes())?;
    }
    Ok(())
}

fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(path)
}

/// Template files are written 0600, as the original.
fn write_private_file(path: &Path, content: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content)
}

/// The generated `config.yaml` of an import without one: root `.md` files are its prompt
/// files, `skills/<name>/SKILL.md` its skills. Serialised with serde_yaml, so no file name can
/// inject a key.
// Over 60 lines: most of it is the generated file's shape, declared in place.
pub fn default_config(display_name: &str, files: &[(RelPath, String)]) -> String {
    #[derive(Serialize)]
    struct A2a {
        port: u16,
        streaming: bool,
        push_notifications: bool,
    }
    #[derive(Serialize)]
    struct Env {
        required: Vec<&'static str>,
        optional: Vec<String>,
    }
    #[derive(Serialize)]
    struct Generated<'a> {
        name: &'a str,
        description: &'static str,
        version: &'static str,
        tier: i64,
        model: &'static str,
        prompt_files: Vec<String>,
        skills: Vec<String>,
        tools: Vec<String>,
        a2a: A2a,
        env: Env,
    }
    let mut prompt_files: Vec<String> = files
        .iter()
        .map(|(path, _)| path.as_str())
        .filter(|path| !path.contains('/') && path.ends_with(".md"))
        .map(str::to_string)
        .collect();
    prompt_files.sort();
    if prompt_files.is_empty() {
        prompt_files.push("system-prompt.md".into());
    }
    let skills: BTreeSet<String> = files
        .iter()
        .filter_map(|(path, _)| {
            let parts: Vec<&str> = path.components().collect();
            match parts.as_slice() {
                ["skills", skill, "SKILL.md"] => Some((*skill).to_string()),
                _ => None,
            }
        })
        .collect();
    let generated = Generated {
        name: display_name,
        description: "Imported agent",
        version: "1.0.0",
        tier: i64::from(DEFAULT_TIER),
        model: DEFAULT_MODEL,
        prompt_files,
        skills: skills.into_iter().collect(),
        tools: Vec::new(),
        a2a: A2a {
            port: 8000,
            streaming: true,
            push_notifications: true,
        },
        env: Env {
            required: vec!["ANTHROPIC_API_KEY"],
            optional: Vec::new(),
        },
    };
    serde_yaml::to_string(&generated).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_like_the_original() {
        assert_eq!(normalize_name("My Agent"), "my-agent");
        assert_eq!(normalize_name("../../etc"), "etc");
        assert_eq!(normalize_name("a.b/c"), "abc");
        assert_eq!(normalize_name("Ünïcode_1"), "ncode_1");
        assert_eq!(normalize_name("..."), "unnamed");
        assert_eq!(normalize_name(""), "unnamed");
    }

    #[test]
    fn generated_config_cannot_be_injected() {
        let files = vec![
            (
                RelPath::parse("evil\": {runtime: pwned}.md").unwrap(),
                String::new(),
            ),
            (
                RelPath::parse("skills/search/SKILL.md").unwrap(),
                String::new(),
            ),
        ];
        let text = default_config("name\nruntime: pwned", &files);
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["name"].as_str(), Some("name\nruntime: pwned"));
        assert!(parsed.get("runtime").is_none());
        assert_eq!(parsed["tier"].as_i64(), Some(3));
        assert_eq!(parsed["skills"][0].as_str(), Some("search"));
    }
}
