//! Wire shapes of the settings routes (secrets, tokens, config), as the original sends them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::json::{go_time, go_time_opt};

/// One key of a secrets listing; the value is never sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretEntry {
    pub key: String,
    /// Always `true`: only keys with a value are listed.
    pub has_value: bool,
    /// `workspace` (the workspace's own value) or `global` (inherited).
    pub scope: &'static str,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String)]
    pub updated_at: DateTime<Utc>,
}

/// `{"key","value"}` (the original's body), or `{"secrets": {KEY: value, …}}` to write several
/// keys in one transaction.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct SetSecretBody {
    pub key: Option<String>,
    pub value: Option<String>,
    pub secrets: Option<BTreeMap<String, String>>,
}

/// The answer of a secret write or delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretDone {
    /// `saved` or `deleted`.
    pub status: &'static str,
    /// The key (single-key writes and deletes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The keys written, in order (multi-key writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// `global` on the global routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
}

/// 500 of `GET …/secrets/values`: the keys (`global:K`, `workspace:K`) that did not decrypt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecryptFailure {
    pub error: String,
    pub failed_keys: Vec<String>,
}

/// A workspace resolving a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependentWorkspace {
    pub id: String,
    pub name: String,
    /// Where its value comes from: `workspace` or `global`.
    pub scope: &'static str,
}

/// `GET …/secrets/{key}/dependents`: the canvas's delete dialog lists `dependents` (workspace
/// names); `workspaces` says which workspace and from which scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dependents {
    pub dependents: Vec<String>,
    pub workspaces: Vec<DependentWorkspace>,
}

/// One live workspace token (never its plaintext).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEntry {
    pub id: String,
    pub prefix: String,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "go_time_opt")]
    #[schema(value_type = Option<String>)]
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenEntry>,
    /// The length of this page.
    pub count: usize,
}

/// `?limit=1..200&offset=0..`; other values fall back to the defaults.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct TokenPage {
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// The plaintext, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintedToken {
    pub auth_token: String,
    pub workspace_id: String,
    pub message: &'static str,
}

/// One live org token.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgTokenEntry {
    pub id: String,
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    #[serde(
        serialize_with = "go_time_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgTokenList {
    pub tokens: Vec<OrgTokenEntry>,
    pub count: usize,
}

/// `{"name": "…"}`, optional; a body that does not bind mints an unnamed token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct MintOrgToken {
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MintedOrgToken {
    pub id: String,
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub auth_token: String,
    pub warning: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgTokenRevoked {
    pub revoked: String,
}

/// `GET /workspaces/{id}/config`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// `{"status": "…"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOnly {
    pub status: &'static str,
}
