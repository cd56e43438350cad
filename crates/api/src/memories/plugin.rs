//! The external memory plugin (`MEMORY_PLUGIN_URL`), called as the original's client did
//! (`internal/memory/client/client.go` at 624ef4d0): `POST /v1/search` and `DELETE
//! /v1/memories/{id}`, JSON, one timeout per request (`MEMORY_PLUGIN_TIMEOUT`, 2 s by default).

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// What went wrong calling the plugin.
#[derive(Debug, Error)]
pub enum PluginError {
    /// No answer (refused, timed out): the plugin is down or misconfigured.
    #[error("memory plugin unreachable")]
    Unreachable(#[source] reqwest::Error),
    /// The plugin answered 404.
    #[error("memory plugin: not found")]
    NotFound,
    /// Any other non-success answer, or one that does not parse.
    #[error("memory plugin answered {0}")]
    Failed(String),
}

/// A memory as the plugin returns it.
#[derive(Debug, Deserialize)]
pub struct PluginMemory {
    pub id: String,
    pub namespace: String,
    pub content: String,
    pub kind: String,
    pub source: String,
    #[serde(default)]
    pub pin: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub score: Option<f64>,
    pub propagation: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct SearchRequest<'a> {
    namespaces: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    query: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kinds: Option<[&'a str; 1]>,
    limit: i64,
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    // The plugin sends `null` for no rows.
    memories: Option<Vec<PluginMemory>>,
}

/// The plugin at `base_url`, each request bounded by `timeout`.
#[derive(Debug, Clone)]
pub struct Plugin<'a> {
    pub base_url: &'a str,
    pub timeout: Duration,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

impl Plugin<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// `POST /v1/search`.
    pub async fn search(
        &self,
        namespaces: &[String],
        query: &str,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PluginMemory>, PluginError> {
        let request = SearchRequest {
            namespaces,
            query,
            kinds: kind.map(|kind| [kind]),
            limit,
        };
        let response = client()
            .post(self.url("/v1/search"))
            .timeout(self.timeout)
            .header("Accept", "application/json")
            .json(&request)
            .send()
            .await
            .map_err(PluginError::Unreachable)?;
        let response = check(response)?;
        let body: SearchResponse = response
            .json()
            .await
            .map_err(|error| PluginError::Failed(error.to_string()))?;
        Ok(body.memories.unwrap_or_default())
    }

    /// `DELETE /v1/memories/{id}`, on behalf of `namespace`.
    pub async fn forget(&self, id: Uuid, namespace: &str) -> Result<(), PluginError> {
        let response = client()
            .delete(self.url(&format!("/v1/memories/{id}")))
            .timeout(self.timeout)
            .header("Accept", "application/json")
            .json(&serde_json::json!({ "requested_by_namespace": namespace }))
            .send()
            .await
            .map_err(PluginError::Unreachable)?;
        check(response).map(drop)
    }
}

fn check(response: reqwest::Response) -> Result<reqwest::Response, PluginError> {
    match response.status() {
        status if status.is_success() => Ok(response),
        reqwest::StatusCode::NOT_FOUND => Err(PluginError::NotFound),
        status => Err(PluginError::Failed(status.to_string())),
    }
}
