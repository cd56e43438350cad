//! `GET /templates` and `POST /templates/import` over `CONFIGS_DIR` (api-contract §6.7).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::files::MAX_FILES_PER_REQUEST;
use crate::files::templates::{self, ImportError, TemplateSummary};
use crate::handlers::files::{batch_body_limit, read_body, too_many_files, validated_files};
use crate::json::parse_body;
use crate::{ApiError, AppState};

/// `GET /templates`
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<TemplateSummary>>> {
    let configs_dir = state.config.configs_dir.clone();
    let summaries = tokio::task::spawn_blocking(move || templates::list(&configs_dir))
        .await
        .map_err(ApiError::internal("failed to list templates"))?;
    Ok(Json(summaries))
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    name: Option<String>,
    files: Option<BTreeMap<String, String>>,
}

/// `POST /templates/import` with `{"name","files":{rel:content}}` → 201. Nothing is written
/// unless every path and size is valid, and the template appears whole or not at all.
pub async fn import(
    State(state): State<AppState>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bytes = read_body(body, batch_body_limit(&state.config)).await?;
    let body: ImportBody = parse_body(&bytes, "invalid request body")?;
    let (Some(name), Some(raw_files)) = (body.name.filter(|n| !n.is_empty()), body.files) else {
        return Err(ApiError::BadRequest("invalid request body".into()));
    };
    if raw_files.len() > MAX_FILES_PER_REQUEST {
        return Err(too_many_files(raw_files.len()));
    }
    let id = templates::normalize_name(&name);
    let exists = || ApiError::WithBody {
        status: StatusCode::CONFLICT,
        body: json!({ "error": "template already exists", "id": id }),
    };
    if state.config.configs_dir.join(&id).exists() {
        return Err(exists());
    }
    let files = validated_files(&state.config, raw_files)?;
    let configs_dir = state.config.configs_dir.clone();
    let (dir, display) = (id.clone(), name.clone());
    let imported = tokio::task::spawn_blocking(move || {
        templates::import(&configs_dir, &dir, &display, &files)
    })
    .await
    .map_err(ApiError::internal("failed to import template"))?;
    match imported {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(json!({ "status": "imported", "id": id, "name": name })),
        )),
        Err(ImportError::Exists) => Err(exists()),
        Err(error @ ImportError::Io(_)) => {
            Err(ApiError::internal("failed to import template")(error))
        }
    }
}
