//! `/workspaces/{id}/files…`: the canvas's Files and Config tabs. Checks run in the original's
//! order; every path is a validated `RelPath` before anything touches a backend. The `{id}` is
//! read by [`WorkspaceFiles::open`], after the path and root checks: a malformed id is a 404
//! there, like an unknown one, as in the original.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::error::{ApiResult, ErrorBody};
use crate::files::batch_permits::BatchPermits;
use crate::files::{FileEntry, MAX_FILES_PER_REQUEST, RelPath, Root, WorkspaceFiles, relpath};
use crate::json::parse_body;
use crate::{ApiConfig, ApiError, AppState};

/// Set to `true` on a listing cut at `MAX_LIST_ENTRIES`.
pub const TRUNCATED_HEADER: &str = "x-list-truncated";

/// Writes of one replace in flight at once (the EIC pool runs `EIC_MAX_OPS_PER_CONNECTION`, default 32, per instance).
const REPLACE_CONCURRENCY: usize = 4;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RootQuery {
    /// `/configs` (the default), `/workspace`, `/home` or `/plugins`.
    root: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `/configs` (the default), `/workspace`, `/home` or `/plugins`.
    root: Option<String>,
    /// The directory to list, relative to the root.
    path: Option<String>,
    /// Levels to descend, 1 to 5 (1 by default).
    depth: Option<String>,
}

/// The errors every files operation may answer besides its own: the caller, the workspace, and
/// its host.
#[derive(Debug, IntoResponses)]
#[allow(dead_code)] // only documents the answers
pub enum WorkspaceErrors {
    #[response(status = 401, description = "Not this workspace")]
    Unauthorized(#[to_schema] ErrorBody),
    #[response(
        status = 403,
        description = "The instance refused the operation even to root"
    )]
    PermissionDenied(#[to_schema] ErrorBody),
    #[response(status = 404, description = "Unknown workspace")]
    NotFound(#[to_schema] ErrorBody),
    #[response(status = 409, description = "Instance unavailable")]
    InstanceUnavailable(#[to_schema] ErrorBody),
    #[response(status = 502, description = "Remote step failed")]
    RemoteFailed(#[to_schema] ErrorBody),
    #[response(
        status = 503,
        description = "Datastore unavailable, or `busy` (replace)"
    )]
    DatastoreUnavailable(#[to_schema] ErrorBody),
    #[response(status = 504, description = "Host did not answer in time")]
    Timeout(#[to_schema] ErrorBody),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileContent {
    pub content: String,
    pub path: String,
    pub size: usize,
}

/// The answer of a write or delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileDone {
    pub path: String,
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replaced {
    pub files: usize,
    /// `local` or `ec2-ssh`.
    pub source: &'static str,
    pub status: &'static str,
    pub workspace: String,
}

fn root(raw: Option<&str>) -> ApiResult<Root> {
    Root::parse(raw).ok_or_else(|| ApiError::BadRequest(relpath::ROOT_MESSAGE.into()))
}

fn path(raw: &str) -> ApiResult<RelPath> {
    RelPath::parse(raw).map_err(|_| ApiError::BadRequest("invalid path".into()))
}

fn depth(raw: Option<&str>) -> ApiResult<u32> {
    match raw {
        None | Some("") => Ok(1),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|depth| (1..=5).contains(depth))
            .ok_or_else(|| ApiError::BadRequest("depth must be 1-5".into())),
    }
}

/// The largest single-file body: the content limit plus room for JSON escaping.
fn file_body_limit(config: &ApiConfig) -> usize {
    config
        .max_file_bytes
        .saturating_mul(6)
        .saturating_add(64 * 1024)
}

/// The largest multi-file body (replace, import).
pub fn batch_body_limit(config: &ApiConfig) -> usize {
    config
        .max_file_bytes
        .saturating_mul(32)
        .max(16 * 1024 * 1024)
}

/// 413 unless `content` fits `MAX_FILE_BYTES`.
pub fn check_size(config: &ApiConfig, content: &str) -> ApiResult<()> {
    let limit = config.max_file_bytes as u64;
    if content.len() as u64 > limit {
        return Err(crate::files::too_large(limit));
    }
    Ok(())
}

/// 400 `too many files (N), max 200`.
pub fn too_many_files(count: usize) -> ApiError {
    ApiError::BadRequest(format!(
        "too many files ({count}), max {MAX_FILES_PER_REQUEST}"
    ))
}

/// Reads a request body up to `limit` bytes; a larger one is 413 with a JSON body (the plain
/// extractors would answer 413 in text).
pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let over_limit = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if over_limit {
            ApiError::PayloadTooLarge(format!("request body too large (max {limit} bytes)"))
        } else {
            ApiError::BadRequest("invalid request body".into())
        }
    })
}

/// `GET /workspaces/{id}/files?root=&path=&depth=`
#[utoipa::path(get, path = "/workspaces/{id}/files", tag = "files",
    params(("id" = Uuid, Path), ListQuery),
    responses(
    (status = 200, description = "Entries (at most `MAX_LIST_ENTRIES`)", body = Vec<FileEntry>,
        headers(("x-list-truncated" = String, description = "`true` when entries were cut"))),
    (status = 400, description = "Invalid root, path or depth", body = ErrorBody),
    WorkspaceErrors))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<([(&'static str, &'static str); 1], Json<Vec<FileEntry>>)> {
    let root = root(query.root.as_deref())?;
    let dir = match query.path.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(path(raw)?),
    };
    let depth = depth(query.depth.as_deref())?;
    let files = WorkspaceFiles::open(&state, &id).await?;
    let listing = files.list(root, dir.as_ref(), depth).await?;
    // The body stays the array the canvas reads; a cut listing says so in a header.
    let truncated = if listing.truncated { "true" } else { "false" };
    Ok(([(TRUNCATED_HEADER, truncated)], Json(listing.entries)))
}

/// `GET /workspaces/{id}/files/{*path}?root=`
#[utoipa::path(get, path = "/workspaces/{id}/files/{path}", tag = "files",
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Relative path"),
           RootQuery),
    responses(
    (status = 200, description = "The file", body = FileContent),
    (status = 400, description = "Invalid root or path", body = ErrorBody),
    (status = 413, description = "File too large", body = ErrorBody),
    WorkspaceErrors))]
pub async fn read(
    State(state): State<AppState>,
    Path((id, raw_path)): Path<(String, String)>,
    Query(query): Query<RootQuery>,
) -> ApiResult<Json<FileContent>> {
    let path = path(&raw_path)?;
    let root = root(query.root.as_deref())?;
    let files = WorkspaceFiles::open(&state, &id).await?;
    let content = files.read(root, &path).await?;
    Ok(Json(FileContent {
        size: content.len(),
        content: String::from_utf8_lossy(&content).into_owned(),
        path: path.as_str().to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WriteBody {
    #[serde(default)]
    pub content: Option<String>,
}

/// `PUT /workspaces/{id}/files/{*path}?root=` with `{"content":…}`
#[utoipa::path(put, path = "/workspaces/{id}/files/{path}", tag = "files",
    params(("id" = Uuid, Path), ("path" = String, Path), RootQuery),
    request_body = WriteBody, responses(
    (status = 200, description = "Saved", body = FileDone),
    (status = 400, description = "Invalid root, path or body", body = ErrorBody),
    (status = 413, description = "Too large", body = ErrorBody),
    WorkspaceErrors))]
pub async fn write(
    State(state): State<AppState>,
    Path((id, raw_path)): Path<(String, String)>,
    Query(query): Query<RootQuery>,
    body: Body,
) -> ApiResult<Json<FileDone>> {
    let path = path(&raw_path)?;
    let bytes = read_body(body, file_body_limit(&state.config)).await?;
    let content = parse_body::<WriteBody>(&bytes, "invalid request body")?
        .content
        .unwrap_or_default();
    check_size(&state.config, &content)?;
    let root = root(query.root.as_deref())?;
    let files = WorkspaceFiles::open(&state, &id).await?;
    files.write(root, &path, Bytes::from(content)).await?;
    Ok(Json(FileDone {
        path: path.as_str().to_string(),
        status: "saved",
    }))
}

/// `DELETE /workspaces/{id}/files/{*path}?root=`. The catch-all arrives without the slash that
/// separates it from `files/` (the original stripped exactly that one, after refusing every
/// real request as absolute: fixed); a missing file is success, as `rm -f` was.
#[utoipa::path(delete, path = "/workspaces/{id}/files/{path}", tag = "files",
    params(("id" = Uuid, Path), ("path" = String, Path), RootQuery),
    responses(
    (status = 200, description = "Deleted (or was absent)", body = FileDone),
    (status = 400, description = "Invalid root or path", body = ErrorBody),
    WorkspaceErrors))]
pub async fn delete(
    State(state): State<AppState>,
    Path((id, raw_path)): Path<(String, String)>,
    Query(query): Query<RootQuery>,
) -> ApiResult<Json<FileDone>> {
    let path = path(&raw_path)?;
    let root = root(query.root.as_deref())?;
    let files = WorkspaceFiles::open(&state, &id).await?;
    files.delete(root, &path).await?;
    Ok(Json(FileDone {
        path: path.as_str().to_string(),
        status: "deleted",
    }))
}

/// Files by path relative to `/configs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplaceBody {
    pub files: Option<BTreeMap<String, String>>,
}

/// `PUT /workspaces/{id}/files` with `{"files":{rel:content}}`: upsert-many into `/configs`.
/// Every path and size is checked before the first write.
#[utoipa::path(put, path = "/workspaces/{id}/files", tag = "files",
    params(("id" = Uuid, Path)), request_body = ReplaceBody, responses(
    (status = 200, description = "Written", body = Replaced),
    (status = 400, description = "Invalid body or path", body = ErrorBody),
    (status = 413, description = "Too large", body = ErrorBody),
    WorkspaceErrors))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(permits): Extension<BatchPermits>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Replaced>> {
    let _permit = permits.acquire().await?;
    let bytes = read_body(body, batch_body_limit(&state.config)).await?;
    let body: ReplaceBody = parse_body(&bytes, "invalid request body")?;
    let Some(raw_files) = body.files else {
        return Err(ApiError::BadRequest("invalid request body".into()));
    };
    if raw_files.len() > MAX_FILES_PER_REQUEST {
        return Err(too_many_files(raw_files.len()));
    }
    let count = raw_files.len();
    let files = WorkspaceFiles::open(&state, &id).await?;
    let writes = validated_files(&state.config, raw_files)?;
    futures_util::stream::iter(writes)
        .map(|(path, content)| {
            let files = &files;
            async move {
                files
                    .write(Root::Configs, &path, Bytes::from(content))
                    .await
            }
        })
        .buffer_unordered(REPLACE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Json(Replaced {
        files: count,
        source: files.source(),
        status: "replaced",
        workspace: id,
    }))
}

/// Validates every path (400 `invalid request body`) and size (413) of a multi-file body.
pub fn validated_files(
    config: &ApiConfig,
    raw_files: BTreeMap<String, String>,
) -> ApiResult<Vec<(RelPath, String)>> {
    let files = raw_files
        .into_iter()
        .map(|(raw, content)| {
            let path = RelPath::parse(&raw)
                .map_err(|_| ApiError::BadRequest("invalid request body".into()))?;
            Ok((path, content))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    for (_, content) in &files {
        check_size(config, content)?;
    }
    Ok(files)
}
