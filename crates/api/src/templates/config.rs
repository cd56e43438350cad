//! The one reader of a template's `config.yaml`: the listing shows it, a workspace created from
//! the template takes its runtime and model from it.

use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::catalog::{ModelSpec, ProviderSpec};

/// The tier of a workspace or template that names none: the self-hosted default (the original
/// uses 4 only with a SaaS provisioner).
pub const DEFAULT_TIER: i32 = 3;
/// The default tier of a tenant (`MOLECULE_ORG_ID` set: a control plane provisions its
/// workspaces), as the original's create path chose it.
pub const TENANT_DEFAULT_TIER: i32 = 4;

/// The tier a new workspace gets when its request names none.
pub fn default_tier(config: &crate::ApiConfig) -> i32 {
    match config.org_id.as_deref().map(str::trim) {
        Some(org) if !org.is_empty() => TENANT_DEFAULT_TIER,
        _ => DEFAULT_TIER,
    }
}

/// Why a template folder yields no configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config.yaml is missing or unreadable")]
    Missing,
    #[error("config.yaml does not parse: {0}")]
    Invalid(#[from] serde_yaml::Error),
}

/// A YAML `key:` with no value reads as the type's zero value, as Go's yaml.v3 does.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The parts of a `config.yaml` the listing reads; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigYaml {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default, deserialize_with = "nullable")]
    pub tier: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub runtime: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default)]
    pub skills: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub providers: Vec<ProviderSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub runtime_config: RuntimeConfigYaml,
}

#[derive(Debug, Default, Deserialize)]
pub struct RuntimeConfigYaml {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Vec<ModelSpec>,
    #[serde(default, deserialize_with = "nullable")]
    pub required_env: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub providers: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub provision_timeout_seconds: i64,
}

impl ConfigYaml {
    /// Reads `dir/config.yaml`.
    pub fn read(dir: &Path) -> Result<ConfigYaml, ConfigError> {
        let text =
            std::fs::read_to_string(dir.join("config.yaml")).map_err(|_| ConfigError::Missing)?;
        Ok(serde_yaml::from_str(&text)?)
    }

    /// The model the listing shows: the top-level `model`, else `runtime_config.model`.
    pub fn listed_model(&self) -> &str {
        if self.model.is_empty() {
            &self.runtime_config.model
        } else {
            &self.model
        }
    }

    /// The model a new workspace defaults to: `runtime_config.model`, else the top-level `model`
    /// (the original's create reads them in this order).
    pub fn default_model(&self) -> Option<&str> {
        [&self.runtime_config.model, &self.model]
            .into_iter()
            .find(|m| !m.is_empty())
            .map(String::as_str)
    }

    /// The runtime a new workspace defaults to.
    pub fn default_runtime(&self) -> Option<&str> {
        Some(self.runtime.as_str()).filter(|r| !r.is_empty())
    }
}
