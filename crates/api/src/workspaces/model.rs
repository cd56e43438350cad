//! `GET|PUT /workspaces/{id}/model` and `/provider`: encrypted rows in `workspace_secrets`. A PUT
//! records `WORKSPACE_RESTART_REQUESTED` instead of restarting anything (there is no
//! provisioning backend here).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use store::StoreError;
use store::secrets::{MODEL_KEY, PROVIDER_KEY};
use utoipa::ToSchema;

use crate::error::{ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// One of the two settings: where it is stored and how the JSON names it.
#[derive(Debug)]
struct Setting {
    key: &'static str,
    field: &'static str,
}

const MODEL: Setting = Setting {
    key: MODEL_KEY,
    field: "model",
};
const PROVIDER: Setting = Setting {
    key: PROVIDER_KEY,
    field: "provider",
};

impl Setting {
    /// `value` in this setting's field of an answer (`model` or `provider`), the other `None`.
    fn fields(&self, value: String) -> (Option<String>, Option<String>) {
        if self.key == MODEL_KEY {
            (Some(value), None)
        } else {
            (None, Some(value))
        }
    }
}

/// The setting (`model` or `provider`, whichever was asked) and where it came from:
/// `workspace_secrets`, or `default` (empty) when unset.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub source: &'static str,
}

/// `saved` with the value (in `model` or `provider`), or `cleared`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingSaved {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub status: &'static str,
}

/// `PUT /workspaces/{id}/model`'s body; a missing or `null` model clears it, like `""`. Read
/// key by key (any other type is a 400), so this type only documents it.
#[derive(Debug, ToSchema)]
pub struct ModelBody {
    pub model: Option<String>,
}

/// `PUT /workspaces/{id}/provider`'s body, read like [`ModelBody`].
#[derive(Debug, ToSchema)]
pub struct ProviderBody {
    pub provider: Option<String>,
}

/// `GET` and `PUT` of one setting: the same handlers over [`MODEL`] and [`PROVIDER`].
macro_rules! setting_routes {
    ($get:ident, $put:ident, $path:tt, $setting:ident, $body:ident, $what:tt) => {
        #[utoipa::path(get, path = $path, tag = "settings",
                    params(("id" = Uuid, Path)), responses(
                    (status = 200, description = $what, body = SettingView),
                    (status = 400, description = "Invalid id", body = ErrorBody),
                    (status = 401, description = "Not this workspace", body = ErrorBody),
                    (status = 500, description = "Decryption failed", body = ErrorBody),
                    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
        pub async fn $get(
            state: State<AppState>,
            id: WorkspaceId,
        ) -> Result<Json<SettingView>, ApiError> {
            read(state, id, &$setting).await
        }

        #[utoipa::path(put, path = $path, tag = "settings",
                    params(("id" = Uuid, Path)), request_body = $body, responses(
                    (status = 200, description = "Saved or cleared", body = SettingSaved),
                    (status = 400, description = "Invalid body", body = ErrorBody),
                    (status = 401, description = "Not this workspace", body = ErrorBody),
                    (status = 404, description = "Unknown", body = ErrorBody),
                    (status = 413, description = "Body too large"),
                    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
        pub async fn $put(
            state: State<AppState>,
            id: WorkspaceId,
            body: Bytes,
        ) -> Result<Json<SettingSaved>, ApiError> {
            write(state, id, body, &$setting).await
        }
    };
}

setting_routes!(
    get_model,
    put_model,
    "/workspaces/{id}/model",
    MODEL,
    ModelBody,
    "The model"
);
setting_routes!(
    get_provider,
    put_provider,
    "/workspaces/{id}/provider",
    PROVIDER,
    ProviderBody,
    "The provider"
);

async fn read(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    setting: &Setting,
) -> Result<Json<SettingView>, ApiError> {
    let value = store::secrets::get(&state.db, &state.crypto, id, setting.key)
        .await
        .map_err(|error| match error {
            StoreError::Crypto(_) => ApiError::from_store(error, "failed to decrypt"),
            other => ApiError::from_store(other, "query failed"),
        })?;
    let (value, source) = match value {
        Some(value) => (value, "workspace_secrets"),
        None => (String::new(), "default"),
    };
    let (model, provider) = setting.fields(value);
    Ok(Json(SettingView {
        model,
        provider,
        source,
    }))
}

async fn write(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
    setting: &Setting,
) -> Result<Json<SettingSaved>, ApiError> {
    let value = parse_value(&body, setting.field)?;
    let failure = if value.is_empty() { "clear" } else { "save" };
    let context = format!("failed to {failure} {}", setting.field);

    let mut tx = state.db.begin().await.context(&context)?;
    if store::workspaces::status(&mut *tx, id)
        .await
        .context(&context)?
        .is_none()
    {
        return Err(ApiError::workspace_not_found());
    }
    if value.is_empty() {
        store::secrets::delete(&mut *tx, id, setting.key)
            .await
            .context(&context)?;
    } else {
        store::secrets::upsert(&mut *tx, &state.crypto, id, setting.key, &value)
            .await
            .context(&context)?;
    }
    let reason = json!({ "reason": format!("{} changed", setting.field) });
    let mut restarts = crate::provisioner::PendingRestarts::default();
    crate::provisioner::request_restart(
        &state.provisioning,
        &mut tx,
        &[id],
        &reason,
        &mut restarts,
    )
    .await
    .context(&context)?;
    tx.commit().await.context(&context)?;
    restarts.dispatch(&state);

    if value.is_empty() {
        return Ok(Json(SettingSaved {
            model: None,
            provider: None,
            status: "cleared",
        }));
    }
    let (model, provider) = setting.fields(value);
    Ok(Json(SettingSaved {
        model,
        provider,
        status: "saved",
    }))
}

/// `{"<field>": "<value>"}`; a missing field or `null` clears, like an empty string.
fn parse_value(body: &[u8], field: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::BadRequest("invalid request body".to_string());
    let object: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| invalid())?;
    match object.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(invalid()),
    }
}

/// The LLM provider implied by a model slug's `<prefix>/…`, as the original derives it on create;
/// `None` for unknown prefixes (nothing is stored then).
pub(crate) fn provider_for_model(model: &str) -> Option<&'static str> {
    let (prefix, _) = model.split_once('/')?;
    let provider = match prefix {
        "minimax" => "minimax",
        "minimax-cn" => "minimax-cn",
        "minimax-oauth" => "minimax-oauth",
        "anthropic" => "anthropic",
        "gemini" => "gemini",
        "google-gemini-cli" => "google-gemini-cli",
        "deepseek" => "deepseek",
        "zai" => "zai",
        "kimi-coding" => "kimi-coding",
        "kimi-coding-cn" => "kimi-coding-cn",
        "alibaba" | "dashscope" | "qwen" => "alibaba",
        "alibaba-coding-plan" => "alibaba-coding-plan",
        "qwen-oauth" => "qwen-oauth",
        "xiaomi" | "mimo" => "xiaomi",
        "arcee" | "arcee-ai" => "arcee",
        "nvidia" | "nim" => "nvidia",
        "ollama-cloud" => "ollama-cloud",
        "huggingface" | "hf" => "huggingface",
        "ai-gateway" | "aigateway" => "ai-gateway",
        "kilocode" => "kilocode",
        "opencode-zen" => "opencode-zen",
        "opencode-go" => "opencode-go",
        "openrouter" => "openrouter",
        "custom" => "custom",
        "nousresearch" | "openai" => "openrouter",
        "xai" | "grok" => "xai",
        "bedrock" | "aws" => "bedrock",
        "gmi" => "gmi",
        "lmstudio" | "lm-studio" => "lmstudio",
        "openai-codex" => "openai-codex",
        "copilot-acp" => "copilot-acp",
        "copilot" => "copilot",
        tencent if tencent.starts_with("tencent") => "tencent-tokenhub",
        _ => return None,
    };
    Some(provider)
}

#[cfg(test)]
mod tests {
    use super::provider_for_model;

    #[test]
    fn providers_follow_the_slug_prefix() {
        assert_eq!(provider_for_model("minimax/MiniMax-M2.7"), Some("minimax"));
        assert_eq!(provider_for_model("openai/gpt-5"), Some("openrouter"));
        assert_eq!(provider_for_model("qwen/qwen3"), Some("alibaba"));
        assert_eq!(provider_for_model("anthropic:claude"), None);
        assert_eq!(provider_for_model("unknown/x"), None);
        assert_eq!(
            provider_for_model("tencent-hunyuan/x"),
            Some("tencent-tokenhub")
        );
        assert_eq!(provider_for_model("lm-studio/qwen"), Some("lmstudio"));
        assert_eq!(provider_for_model("/x"), None);
    }
}
