//! `GET|PUT /workspaces/{id}/model` and `/provider` (api-contract §4): encrypted rows in
//! `workspace_secrets`. A PUT records `WORKSPACE_RESTART_REQUESTED` instead of restarting
//! anything (there is no provisioning backend here).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{ApiError, AppState};
use store::StoreError;
use store::secrets::{MODEL_KEY, PROVIDER_KEY};

/// One of the two settings: where it is stored and how the JSON names it.
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

pub async fn get_model(state: State<AppState>, id: Path<String>) -> Result<Json<Value>, ApiError> {
    read(state, id, &MODEL).await
}

pub async fn put_model(
    state: State<AppState>,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    write(state, id, body, &MODEL).await
}

pub async fn get_provider(
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(state, id, &PROVIDER).await
}

pub async fn put_provider(
    state: State<AppState>,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    write(state, id, body, &PROVIDER).await
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    setting: &Setting,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let value = store::secrets::get(&state.db, &state.crypto, id, setting.key)
        .await
        .map_err(|error| match error {
            StoreError::Crypto(_) => ApiError::internal("failed to decrypt")(error),
            other => ApiError::internal("query failed")(other),
        })?;
    let (value, source) = match value {
        Some(value) => (value, "workspace_secrets"),
        None => (String::new(), "default"),
    };
    Ok(Json(json!({ setting.field: value, "source": source })))
}

async fn write(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
    setting: &Setting,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let value = parse_value(&body, setting.field)?;
    let failure = if value.is_empty() { "clear" } else { "save" };
    let context = format!("failed to {failure} {}", setting.field);
    let internal = |error: StoreError| ApiError::Internal {
        context: context.clone(),
        source: error.into(),
    };

    let mut tx = state.db.begin().await.map_err(|e| internal(e.into()))?;
    if store::workspaces::status(&mut *tx, id)
        .await
        .map_err(internal)?
        .is_none()
    {
        return Err(ApiError::NotFound("workspace not found".to_string()));
    }
    if value.is_empty() {
        store::secrets::delete(&mut *tx, id, setting.key)
            .await
            .map_err(internal)?;
    } else {
        store::secrets::upsert(&mut *tx, &state.crypto, id, setting.key, &value)
            .await
            .map_err(internal)?;
    }
    let reason = json!({ "reason": format!("{} changed", setting.field) });
    store::events::record(&mut *tx, "WORKSPACE_RESTART_REQUESTED", Some(id), &reason)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(|e| internal(e.into()))?;

    if value.is_empty() {
        Ok(Json(json!({ "status": "cleared" })))
    } else {
        Ok(Json(json!({ "status": "saved", setting.field: value })))
    }
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("invalid workspace ID".to_string()))
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
        "lmstudio" => "lmstudio",
        "openai-codex" => "openai-codex",
        "copilot-acp" => "copilot-acp",
        "copilot" => "copilot",
        tencent if tencent.starts_with("tencent") => "tencent",
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
        assert_eq!(provider_for_model("/x"), None);
    }
}
