//! The registry (`PLUGINS_DIR`) and the one reader of `plugin.yaml` (`handlers/plugins.go:93-178`
//! at 624ef4d0).

use std::path::Path;

use serde::Serialize;
use serde_yaml::Value;

/// A plugin as listed: `PluginInfo` (`handlers/plugins.go:93-111`), fields in its order. The
/// lists are `null` when the manifest has none, as the original (the canvas reads them so).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub author: String,
    pub tags: Option<Vec<String>>,
    pub skills: Option<Vec<String>>,
    pub runtimes: Option<Vec<String>>,
    /// Only on `GET /workspaces/{id}/plugins`: whether the plugin declares the workspace's
    /// runtime (or declares none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_on_runtime: Option<bool>,
}

impl PluginInfo {
    /// `{name}` and nothing else: a folder without a readable manifest.
    pub fn bare(name: &str) -> PluginInfo {
        PluginInfo {
            name: name.to_string(),
            version: String::new(),
            description: String::new(),
            author: String::new(),
            tags: None,
            skills: None,
            runtimes: None,
            supported_on_runtime: None,
        }
    }

    /// Reads a `plugin.yaml`. The name is always the folder's (the manifest's `name` is
    /// ignored, as the original). Unparseable YAML gives the bare entry. A numeric `version`
    /// (`version: 1.0`) is kept as its text, where the original dropped it (QUIRK 1).
    pub fn from_manifest(name: &str, yaml: &[u8]) -> PluginInfo {
        let mut info = PluginInfo::bare(name);
        let Ok(Value::Mapping(map)) = serde_yaml::from_slice::<Value>(yaml) else {
            return info;
        };
        let text = |key: &str| match map.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if key == "version" => n.to_string(),
            _ => String::new(),
        };
        let list = |key: &str| match map.get(key) {
            Some(Value::Sequence(items)) => Some(
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        };
        info.version = text("version");
        info.description = text("description");
        info.author = text("author");
        info.tags = list("tags");
        info.skills = list("skills");
        info.runtimes = list("runtimes");
        info
    }
}

/// Largest `plugin.yaml` read for a listing.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;

/// Every folder of the registry, sorted by name, with its manifest; `[]` when the registry is
/// missing or unreadable (`handlers/plugins_listing.go:17-41`).
pub fn list(dir: &Path) -> Vec<PluginInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let manifest = dir.join(&name).join("plugin.yaml");
            match read_small(&manifest) {
                Some(yaml) => PluginInfo::from_manifest(&name, &yaml),
                None => PluginInfo::bare(&name),
            }
        })
        .collect()
}

fn read_small(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_MANIFEST_BYTES {
        return None;
    }
    let mut content = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut content)
        .ok()?;
    Some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_fields_are_read_like_the_original() {
        let info = PluginInfo::from_manifest(
            "ecc",
            b"name: other\nversion: 1.0\ndescription: d\nauthor: a\ntags: [x, 3, y]\nruntimes: [claude_code]\n",
        );
        assert_eq!(info.name, "ecc");
        assert_eq!(info.version, "1.0");
        assert_eq!(info.tags, Some(vec!["x".to_string(), "y".to_string()]));
        assert_eq!(info.skills, None);
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(
            json,
            r#"{"name":"ecc","version":"1.0","description":"d","author":"a","tags":["x","y"],"skills":null,"runtimes":["claude_code"]}"#
        );
        assert_eq!(
            PluginInfo::from_manifest("x", b": : :"),
            PluginInfo::bare("x")
        );
    }
}
