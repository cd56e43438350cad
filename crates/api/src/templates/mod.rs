//! Templates: the folders of `CONFIGS_DIR` holding a `config.yaml`. `GET /templates` lists them,
//! `POST /templates/import` writes one from a map of files (`catalog.rs`); `config.rs` is the
//! one reader of a template's `config.yaml`.

pub mod catalog;
pub mod config;

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody};
use crate::files::MAX_FILES_PER_REQUEST;
use crate::files::batch_permits::BatchPermits;
use crate::files::handlers::{batch_body_limit, read_body, too_many_files, validated_files};
use crate::json::parse_body;
use crate::{ApiError, AppState};
use catalog::{ImportError, TemplateSummary};

/// `GET /templates`
#[utoipa::path(get, path = "/templates", tag = "templates", responses(
    (status = 200, description = "Templates under CONFIGS_DIR", body = Vec<TemplateSummary>),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<TemplateSummary>>> {
    let configs_dir = state.config.configs_dir.clone();
    let summaries = tokio::task::spawn_blocking(move || catalog::list(&configs_dir))
        .await
        .map_err(ApiError::internal("failed to list templates"))?;
    Ok(Json(summaries))
}

/// A template's display name and its files, by relative path.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportBody {
    pub name: Option<String>,
    pub files: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    pub id: String,
    pub name: String,
    pub status: &'static str,
}

/// 409 of an import: the folder exists.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateExists {
    pub error: &'static str,
    pub id: String,
}

/// `POST /templates/import` with `{"name","files":{rel:content}}` → 201. Nothing is written
/// unless every path and size is valid, and the template appears whole or not at all.
#[utoipa::path(post, path = "/templates/import", tag = "templates",
    request_body = ImportBody, responses(
    (status = 201, description = "Imported", body = Imported),
    (status = 400, description = "Invalid body or path", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 409, description = "Exists", body = TemplateExists),
    (status = 413, description = "Too large", body = ErrorBody),
    (status = 503, description = "Datastore unavailable, or `busy`", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    Extension(permits): Extension<BatchPermits>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    let _permit = permits.acquire().await?;
    let bytes = read_body(body, batch_body_limit(&state.config)).await?;
    let body: ImportBody = parse_body(&bytes, "invalid request body")?;
    let (Some(name), Some(raw_files)) = (body.name.filter(|n| !n.is_empty()), body.files) else {
        return Err(ApiError::BadRequest("invalid request body".into()));
    };
    if raw_files.len() > MAX_FILES_PER_REQUEST {
        return Err(too_many_files(raw_files.len()));
    }
    let id = catalog::normalize_name(&name);
    let exists = || {
        let exists = TemplateExists {
            error: "template already exists",
            id: id.clone(),
        };
        ApiError::with_body(StatusCode::CONFLICT, &exists)
    };
    let taken = tokio::fs::try_exists(state.config.configs_dir.join(&id)).await;
    if taken.unwrap_or(false) {
        return Err(exists());
    }
    let files = validated_files(&state.config, raw_files)?;
    let configs_dir = state.config.configs_dir.clone();
    let (dir, display) = (id.clone(), name.clone());
    let imported =
        tokio::task::spawn_blocking(move || catalog::import(&configs_dir, &dir, &display, &files))
            .await
            .map_err(ApiError::internal("failed to import template"))?;
    match imported {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(Imported {
                id,
                name,
                status: "imported",
            }),
        )),
        Err(ImportError::Exists) => Err(exists()),
        Err(error @ ImportError::Io(_)) => {
            Err(ApiError::internal("failed to import template")(error))
        }
    }
}
