//! External workspaces: the connection block an operator hands to an agent running outside the
//! platform (`handlers/external_connection.go` at 624ef4d0), shown on create, re-shown without a
//! token by `GET /workspaces/{id}/external/connection`, and re-issued with a fresh token by
//! `POST /workspaces/{id}/external/rotate` (`handlers/external_rotate.go`).
//!
//! The snippets are the original's templates byte for byte: the canvas's connect dialog replaces
//! their token placeholders (e.g. `AUTH_TOKEN    = "<paste from create response>"`) with the
//! token, so the literals must not change.

pub mod handlers;

use axum::http::HeaderMap;
use axum::http::header::HOST;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiConfig;

const CURL_REGISTER: &str = include_str!("snippets/curl_register.txt");
const PYTHON: &str = include_str!("snippets/python.txt");
const CLAUDE_CODE_CHANNEL: &str = include_str!("snippets/claude_code_channel.txt");
const UNIVERSAL_MCP: &str = include_str!("snippets/universal_mcp.txt");
const HERMES_CHANNEL: &str = include_str!("snippets/hermes_channel.txt");
const CODEX: &str = include_str!("snippets/codex.txt");
const OPENCLAW: &str = include_str!("snippets/openclaw.txt");

/// Everything an external agent needs to register: all twelve keys are always present.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionInfo {
    pub workspace_id: String,
    pub platform_url: String,
    /// The plaintext token; `""` when re-shown (the live token is unrecoverable).
    pub auth_token: String,
    pub registry_endpoint: String,
    pub heartbeat_endpoint: String,
    pub curl_register_template: String,
    pub python_snippet: String,
    pub claude_code_channel_snippet: String,
    pub universal_mcp_snippet: String,
    pub hermes_channel_snippet: String,
    pub codex_snippet: String,
    pub openclaw_snippet: String,
}

/// `{"connection": …}` of the connection and rotate routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionEnvelope {
    pub connection: ConnectionInfo,
}

impl ConnectionInfo {
    /// Stamps every `{{PLATFORM_URL}}` and `{{WORKSPACE_ID}}` of the templates
    /// (`BuildExternalConnectionPayload`, `handlers/external_connection.go:32-54` at 624ef4d0).
    pub fn build(platform_url: &str, workspace_id: Uuid, auth_token: &str) -> Self {
        let base = platform_url.strip_suffix('/').unwrap_or(platform_url);
        let id = workspace_id.to_string();
        let stamp = |template: &str| {
            template
                .replace("{{PLATFORM_URL}}", base)
                .replace("{{WORKSPACE_ID}}", &id)
        };
        ConnectionInfo {
            platform_url: base.to_string(),
            auth_token: auth_token.to_string(),
            registry_endpoint: format!("{base}/registry/register"),
            heartbeat_endpoint: format!("{base}/registry/heartbeat"),
            curl_register_template: stamp(CURL_REGISTER),
            python_snippet: stamp(PYTHON),
            claude_code_channel_snippet: stamp(CLAUDE_CODE_CHANNEL),
            universal_mcp_snippet: stamp(UNIVERSAL_MCP),
            hermes_channel_snippet: stamp(HERMES_CHANNEL),
            codex_snippet: stamp(CODEX),
            openclaw_snippet: stamp(OPENCLAW),
            workspace_id: id,
        }
    }
}

/// The URL external agents reach this server at: `EXTERNAL_PLATFORM_URL`, else the
/// `X-Forwarded-Proto` (or the request's own scheme, `http` without TLS) and the
/// `X-Forwarded-Host` or `Host` (`handlers/external_connection.go:62-77` at 624ef4d0).
pub fn platform_url(config: &ApiConfig, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(url) = config
        .external_platform_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        return url.to_string();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let scheme = header("x-forwarded-proto")
        .or_else(|| uri.scheme_str())
        .unwrap_or("http");
    let host = header("x-forwarded-host")
        .or_else(|| header(HOST.as_str()))
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    format!("{scheme}://{host}")
}

/// The `connection` object of `POST /workspaces` for an external workspace awaiting its agent.
pub fn connection_for_create(
    config: &ApiConfig,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    workspace_id: Uuid,
    auth_token: &str,
) -> serde_json::Value {
    let info = ConnectionInfo::build(
        &platform_url(config, headers, uri),
        workspace_id,
        auth_token,
    );
    serde_json::to_value(info).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The literals the canvas's connect dialog replaces with the token
    /// (`canvas/src/components/ExternalConnectModal.tsx:109-152` at 624ef4d0).
    #[test]
    fn every_snippet_keeps_the_placeholder_the_canvas_replaces() {
        let info = ConnectionInfo::build("https://p.example/", Uuid::nil(), "");
        let cases = [
            (
                &info.python_snippet,
                r#"AUTH_TOKEN    = "<paste from create response>""#,
            ),
            (
                &info.curl_register_template,
                r#"WORKSPACE_AUTH_TOKEN="<paste from create response>""#,
            ),
            (
                &info.claude_code_channel_snippet,
                "MOLECULE_WORKSPACE_TOKENS=<paste auth_token from create response>",
            ),
            (
                &info.universal_mcp_snippet,
                r#"MOLECULE_WORKSPACE_TOKEN="<paste from create response>""#,
            ),
            (
                &info.hermes_channel_snippet,
                r#"MOLECULE_WORKSPACE_TOKEN="<paste from create response>""#,
            ),
            (
                &info.codex_snippet,
                r#"MOLECULE_WORKSPACE_TOKEN = "<paste from create response>""#,
            ),
            (
                &info.openclaw_snippet,
                r#"WORKSPACE_TOKEN="<paste from create response>""#,
            ),
        ];
        for (snippet, placeholder) in cases {
            assert!(snippet.contains(placeholder), "{placeholder}");
            assert!(!snippet.contains("{{"), "unstamped template: {snippet}");
        }
        assert_eq!(info.platform_url, "https://p.example");
        assert_eq!(
            info.registry_endpoint,
            "https://p.example/registry/register"
        );
    }

    #[test]
    fn the_platform_url_prefers_the_setting_then_forwarded_headers_then_host() {
        let mut config = ApiConfig::default();
        let uri: axum::http::Uri = "/workspaces".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "inner:8080".parse().unwrap());
        assert_eq!(platform_url(&config, &headers, &uri), "http://inner:8080");
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("x-forwarded-host", "edge.example".parse().unwrap());
        assert_eq!(
            platform_url(&config, &headers, &uri),
            "https://edge.example"
        );
        config.external_platform_url = Some("https://public.example/".into());
        assert_eq!(
            platform_url(&config, &headers, &uri),
            "https://public.example/"
        );
    }
}
