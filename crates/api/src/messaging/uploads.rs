//! Chat attachments (the original's `handlers/chat_files.go` and `pending_uploads.go` at
//! 624ef4d0): `POST /workspaces/{id}/chat/uploads` streams the multipart body through to a
//! push-mode agent (`/internal/chat/uploads/ingest`, never held whole in memory) or stages each
//! file for a poll-mode agent, which fetches (`GET …/pending-uploads/{file_id}/content`) and acks
//! (`POST …/ack`) it; `GET /workspaces/{id}/chat/download` streams a file back from the agent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::activity::NewActivity;
use store::uploads::{MAX_FILE_BYTES, NewUpload};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::address::AddressPolicy;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// The largest upload request (`chat_files.go:113`).
pub const MAX_REQUEST_BYTES: usize = 50 * 1024 * 1024;
/// The most files one poll-mode upload stages.
pub const MAX_FILES: usize = 64;
/// The bound of a forward to the agent (`chat_files.go:88-97`).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(120);
/// The roots a download may read under (`templates.go:21-26`).
const DOWNLOAD_ROOTS: [&str; 4] = ["/configs", "/workspace", "/home", "/plugins"];

/// One stored or forwarded file.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedFile {
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    pub name: String,
    pub size: i64,
    pub uri: String,
}

/// 200: the files, as the agent will see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    pub files: Vec<UploadedFile>,
}

/// 413: one file is over 25 MiB.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileTooLarge {
    pub error: &'static str,
    pub filename: String,
    pub max: i64,
    pub size: i64,
}

/// 422 / 503: the agent cannot take files now, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReachable {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// The multipart form of an upload: one or more `files`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

/// `POST /workspaces/{id}/chat/uploads`: files for the agent. Push mode streams the request to
/// the agent and relays its answer; poll mode stages the files and logs one inbox row each.
#[utoipa::path(post, path = "/workspaces/{id}/chat/uploads", tag = "chat",
    params(("id" = Uuid, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
    (status = 200, description = "Stored (poll mode) or the agent's answer (push mode)", body = Uploaded),
    (status = 400, description = "Not a multipart body, no files, too many files, an empty file", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 413, description = "A file over 25 MiB, or a request over 50 MiB", body = FileTooLarge),
    (status = 422, description = "No URL and not in push mode", body = NotReachable),
    (status = 502, description = "The agent could not be reached", body = ErrorBody),
    (status = 503, description = "No URL yet, or the inbound secret was just minted", body = NotReachable)))]
pub async fn upload(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Over the cap by its own account: refused before anything is read or forwarded.
    let declared = content_length(&headers).or_else(|| body.size_hint().exact());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        return Err(too_large_request());
    }
    let mode = store::registry::delivery_mode(&state.db, id)
        .await
        .context("delivery_mode lookup failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    if mode == "poll" {
        return stage(&state, id, &headers, body)
            .await
            .map(|files| Json(files).into_response());
    }
    // Only a multipart form goes to the agent (the original forwards anything; the agent
    // refuses it).
    let multipart = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| multer::parse_boundary(v).is_ok());
    if !multipart {
        return Err(refuse_unread(body).await);
    }
    let forward = forward_target(&state, id, "upload").await?;
    let url = format!(
        "{}/internal/chat/uploads/ingest",
        forward.url.trim_end_matches('/')
    );
    let over = Arc::new(AtomicBool::new(false));
    let streamed = Capped {
        inner: std::sync::Mutex::new(Limited::new(body, MAX_REQUEST_BYTES)),
        over: over.clone(),
    };
    let mut request = state
        .messaging
        .client
        .post(url)
        .timeout(FORWARD_TIMEOUT)
        .bearer_auth(&forward.secret)
        .body(reqwest::Body::wrap(streamed));
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        request = request.header(CONTENT_TYPE, content_type.clone());
    }
    if let Some(length) = content_length(&headers) {
        request = request.header(CONTENT_LENGTH, length);
    }
    let answer = request.send().await;
    if over.load(Ordering::Relaxed) {
        return Err(too_large_request());
    }
    let answer = answer.map_err(unreachable)?;
    Ok(relay(answer, &[CONTENT_TYPE]))
}

/// The request body, with a flag raised when it went over its cap (so the answer is 413, not
/// the transport error the cut produces). The mutex only makes the body `Sync`; it is never
/// contended.
struct Capped {
    inner: std::sync::Mutex<Limited<Body>>,
    over: Arc<AtomicBool>,
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let inner = this.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &polled
            && error.is::<LengthLimitError>()
        {
            this.over.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.inner.lock() {
            Ok(inner) => inner.size_hint(),
            Err(_) => http_body::SizeHint::default(),
        }
    }
}

/// The answer to a body that is not a multipart form: 413 when it is over the cap, else 400.
/// It is read to find out, but nothing of it is kept.
async fn refuse_unread(body: Body) -> ApiError {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > MAX_REQUEST_BYTES {
            return too_large_request();
        }
    }
    ApiError::BadRequest("malformed multipart body".into())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn too_large_request() -> ApiError {
    ApiError::PayloadTooLarge("request body too large".into())
}

fn unreachable(error: reqwest::Error) -> ApiError {
    ApiError::Remote {
        status: StatusCode::BAD_GATEWAY,
        message: "workspace unreachable".to_string(),
        source: Some(Box::new(error.without_url())),
    }
}

/// The agent's answer streamed back with its status and only the `keep` headers.
fn relay(answer: reqwest::Response, keep: &[axum::http::HeaderName]) -> Response {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::builder().status(status);
    for name in keep {
        if let Some(value) = answer.headers().get(name.as_str())
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            response = response.header(name, value);
        }
    }
    let body: http::Response<reqwest::Body> = answer.into();
    response
        .body(Body::new(body.into_body()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Where and with which secret the platform calls a push-mode agent (`chat_files.go:142-215`).
struct ForwardTarget {
    url: String,
    secret: String,
}

async fn forward_target(state: &AppState, id: Uuid, action: &str) -> ApiResult<ForwardTarget> {
    let target = super::proxy::cached_target(state, id)
        .await
        .map_err(|_| ApiError::workspace_not_found())?
        .ok_or_else(ApiError::workspace_not_found)?;
    let Some(url) = target.url else {
        if target.delivery_mode != "push" {
            let body = NotReachable {
                detail: Some(
                    "This workspace registered without a publicly-reachable URL (delivery_mode is not 'push'). The platform cannot dispatch chat uploads to it. Re-register the workspace with a public URL in push mode (e.g. via ngrok / Cloudflare tunnel) to enable chat file ",
                ),
                error: format!(
                    "workspace has no callback URL — chat {action} requires push-mode + public URL"
                ),
                retry_after_seconds: None,
            };
            let mut value = serde_json::to_value(&body).unwrap_or_default();
            value["detail"] = json!(format!("{}{action}.", body.detail.unwrap_or_default()));
            return Err(ApiError::WithBody {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: value,
            });
        }
        let body = NotReachable {
            detail: None,
            error: "workspace url not registered yet".into(),
            retry_after_seconds: None,
        };
        return Err(ApiError::with_body(StatusCode::SERVICE_UNAVAILABLE, &body));
    };
    if !AddressPolicy::from_config(&state.config)
        .allows_url(&url)
        .await
    {
        return Err(ApiError::BadRequest(
            "workspace URL is not publicly routable".into(),
        ));
    }
    let secret = store::messaging::inbound_secret_healed(&state.db, &state.crypto, id).await;
    match secret {
        Ok(Some((secret, false))) => Ok(ForwardTarget { url, secret }),
        Ok(Some((_, true))) => {
            let body = NotReachable {
                detail: Some(
                    "Inbound secret was just minted. Workspace will pick it up on its next heartbeat.",
                ),
                error: "workspace re-registering — please retry in 30 seconds".into(),
                retry_after_seconds: Some(30),
            };
            Err(ApiError::with_body(StatusCode::SERVICE_UNAVAILABLE, &body))
        }
        Ok(None) => Err(ApiError::workspace_not_found()),
        Err(error) => {
            tracing::error!(error = %error, workspace_id = %id, "inbound secret unavailable");
            let body = NotReachable {
                detail: Some(
                    "Failed to mint inbound secret. Reprovision the workspace if this persists.",
                ),
                error: format!("workspace not yet enrolled in v2 {action} (RFC #2312)"),
                retry_after_seconds: None,
            };
            Err(ApiError::with_body(StatusCode::SERVICE_UNAVAILABLE, &body))
        }
    }
}

/// Poll mode: each `files` part is staged (at most one file in memory at a time) with its inbox
/// row, in one transaction (`chat_files.go:566-754`).
async fn stage(state: &AppState, id: Uuid, headers: &HeaderMap, body: Body) -> ApiResult<Uploaded> {
    let malformed = || ApiError::BadRequest("malformed multipart body".into());
    let boundary = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(malformed)?;
    let limits = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_REQUEST_BYTES as u64));
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let mut tx = state.db.begin().await.context("could not stage files")?;
    let mut files = Vec::new();
    let mut announcements = Vec::new();
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(multer::Error::StreamSizeExceeded { .. }) => return Err(too_large_request()),
            Err(_) => return Err(malformed()),
        };
        let Some(original) = field.file_name().map(str::to_string) else {
            continue;
        };
        if field.name() != Some("files") {
            continue;
        }
        if files.len() == MAX_FILES {
            return Err(ApiError::BadRequest(format!(
                "too many files (limit {MAX_FILES})"
            )));
        }
        let mime = sanitize_mime(
            field
                .content_type()
                .map(ToString::to_string)
                .as_deref()
                .unwrap_or_default(),
        );
        let mut content = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    content.extend_from_slice(&chunk);
                    if content.len() as i64 > MAX_FILE_BYTES {
                        let body = FileTooLarge {
                            error: "file exceeds per-file cap",
                            filename: original,
                            max: MAX_FILE_BYTES,
                            size: content.len() as i64,
                        };
                        return Err(ApiError::with_body(StatusCode::PAYLOAD_TOO_LARGE, &body));
                    }
                }
                Ok(None) => break,
                Err(multer::Error::StreamSizeExceeded { .. }) => return Err(too_large_request()),
                Err(_) => return Err(ApiError::BadRequest("could not read file part".into())),
            }
        }
        if content.is_empty() {
            return Err(ApiError::BadRequest("file is empty".into()));
        }
        let name = sanitize_filename(&original);
        let file_id = store::uploads::stage(
            &mut *tx,
            &NewUpload {
                workspace_id: id,
                content: &content,
                filename: &name,
                mimetype: &mime,
            },
        )
        .await
        .context("could not stage files")?;
        let size = content.len() as i64;
        let uri = format!("platform-pending:{id}/{file_id}");
        let request = crate::json::raw(
            &json!({"file_id": file_id, "mimeType": mime, "name": name, "size": size, "uri": uri}),
        );
        let summary = format!("chat_upload_receive: {name}");
        let row = NewActivity {
            workspace_id: id,
            activity_type: "a2a_receive",
            source_id: None,
            target_id: Some(id),
            method: Some("chat_upload_receive"),
            summary: Some(&summary),
            request_body: Some(&request),
            response_body: None,
            duration_ms: None,
            status: "ok",
            error_detail: None,
            tool_trace: None,
        };
        store::activity::insert(&mut *tx, &row)
            .await
            .context("could not log upload activity")?;
        announcements.push(crate::agents::activity::announcement(&row));
        files.push(UploadedFile {
            mime_type: mime,
            name,
            size,
            uri,
        });
    }
    if files.is_empty() {
        return Err(ApiError::BadRequest("no files field in request".into()));
    }
    // Announced inside the transaction: PostgreSQL delivers the notifications at commit.
    for payload in &announcements {
        store::events::announce(&mut *tx, "ACTIVITY_LOGGED", id, payload)
            .await
            .context("could not log upload activity")?;
    }
    tx.commit().await.context("could not stage files")?;
    Ok(Uploaded { files })
}

/// The original's file name rule (`chat_files.go:503-530`): the base name, spaces and anything
/// outside `[A-Za-z0-9._-]` as `_`, at most 100 characters keeping a short extension; `file` when
/// nothing is left.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() > 100 {
        let ext = clean
            .rfind('.')
            .map(|dot| clean[dot..].to_string())
            .filter(|ext| ext.len() <= 16)
            .unwrap_or_default();
        clean.truncate(100 - ext.len());
        clean.push_str(&ext);
    }
    if clean.is_empty() || clean == "." || clean == ".." {
        return "file".to_string();
    }
    clean
}

/// The part's media type without parameters; `application/octet-stream` when it is not a
/// printable `type/subtype` (`chat_files.go:768-791`).
pub fn sanitize_mime(raw: &str) -> String {
    let bare = raw.split(';').next().unwrap_or_default().trim();
    if bare.is_empty() {
        return String::new();
    }
    let printable = bare.bytes().all(|b| (0x21..0x7f).contains(&b));
    let shaped = bare
        .split_once('/')
        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
    if printable && shaped {
        bare.to_string()
    } else {
        "application/octet-stream".to_string()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// An absolute path under /configs, /workspace, /home or /plugins.
    #[serde(default)]
    path: String,
}

/// `GET /workspaces/{id}/chat/download`: a file of the agent's, streamed from its
/// `/internal/file/read` (`chat_files.go:367-426`).
#[utoipa::path(get, path = "/workspaces/{id}/chat/download", tag = "chat",
    params(("id" = Uuid, Path), DownloadQuery),
    responses(
    (status = 200, description = "The file, as the agent serves it", body = Vec<u8>, content_type = "application/octet-stream"),
    (status = 400, description = "Missing, relative, outside the roots, or not clean", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 422, description = "No URL and not in push mode", body = NotReachable),
    (status = 502, description = "The agent could not be reached", body = ErrorBody),
    (status = 503, description = "No URL yet, or the inbound secret was just minted", body = NotReachable)))]
pub async fn download(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Query(query): Query<DownloadQuery>,
) -> ApiResult<Response> {
    check_download_path(&query.path)?;
    let forward = forward_target(&state, id, "download").await?;
    let url = format!("{}/internal/file/read", forward.url.trim_end_matches('/'));
    let url = reqwest::Url::parse_with_params(&url, &[("path", query.path.as_str())])
        .map_err(|_| ApiError::internal("failed to construct forward request")("bad URL"))?;
    let answer = state
        .messaging
        .client
        .get(url)
        .timeout(FORWARD_TIMEOUT)
        .bearer_auth(&forward.secret)
        .send()
        .await
        .map_err(unreachable)?;
    Ok(relay(
        answer,
        &[CONTENT_TYPE, CONTENT_LENGTH, CONTENT_DISPOSITION],
    ))
}

/// The download path checks, in the original's order, each a 400.
pub fn check_download_path(path: &str) -> ApiResult<()> {
    let refuse = |message: &str| Err(ApiError::BadRequest(message.to_string()));
    if path.is_empty() {
        return refuse("path query required");
    }
    if !path.starts_with('/') {
        return refuse("path must be absolute");
    }
    let under_root = DOWNLOAD_ROOTS
        .iter()
        .any(|root| path == *root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/')));
    if !under_root {
        return refuse("path must be under /configs, /workspace, /home, or /plugins");
    }
    let clean = !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if !clean || path.contains("..") {
        return refuse("invalid path");
    }
    Ok(())
}

fn file_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::BadRequest("invalid file_id".into()))
}

/// The pending file `file_id` of workspace `id`, or the original's 404s.
async fn owned_pending(state: &AppState, id: Uuid, file_id: Uuid) -> ApiResult<()> {
    let owner = store::uploads::pending_owner(&state.db, file_id)
        .await
        .context("storage error")?;
    match owner {
        None => Err(ApiError::NotFound(
            "pending upload not found, expired, or already acked".into(),
        )),
        Some(owner) if owner != id => Err(ApiError::NotFound("pending upload not found".into())),
        Some(_) => Ok(()),
    }
}

/// `GET /workspaces/{id}/pending-uploads/{file_id}/content`: a staged file's bytes, for the
/// poll-mode agent (`pending_uploads.go:66-128`).
#[utoipa::path(get, path = "/workspaces/{id}/pending-uploads/{file_id}/content", tag = "chat",
    params(("id" = Uuid, Path), ("file_id" = Uuid, Path)),
    responses(
    (status = 200, description = "The file", body = Vec<u8>, content_type = "application/octet-stream"),
    (status = 400, description = "Invalid workspace or file id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Not pending (unknown, expired, acked) or another workspace's", body = ErrorBody)))]
pub async fn pending_content(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Response> {
    let file_id = file_id(&ids.1)?;
    let file = store::uploads::pending(&state.db, file_id)
        .await
        .context("storage error")?
        .ok_or_else(|| {
            ApiError::NotFound("pending upload not found, expired, or already acked".into())
        })?;
    if file.workspace_id != id {
        return Err(ApiError::NotFound("pending upload not found".into()));
    }
    if let Err(error) = store::uploads::mark_fetched(&state.db, file_id).await {
        tracing::warn!(error = %error, %file_id, "cannot note a pending upload fetched");
    }
    let content_type = if file.mimetype.is_empty() {
        "application/octet-stream".to_string()
    } else {
        file.mimetype.clone()
    };
    let mut response = Response::new(Body::from(file.content));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&file.filename)) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(file.size_bytes));
    Ok(response)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (`chat_files.go:245-267`).
pub fn content_disposition(name: &str) -> String {
    let mut quoted = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if matches!(c, '\\' | '"') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{quoted}\"; filename*=UTF-8''{encoded}")
}

/// 200 of an ack.
#[derive(Debug, Serialize, ToSchema)]
pub struct Acked {
    pub acked: bool,
    /// The file stopped being pending between the lookup and the ack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raced: Option<bool>,
}

/// `POST /workspaces/{id}/pending-uploads/{file_id}/ack`: the poll-mode agent has the file
/// (`pending_uploads.go:135-183`); a second ack finds nothing pending (404), as in the original.
#[utoipa::path(post, path = "/workspaces/{id}/pending-uploads/{file_id}/ack", tag = "chat",
    params(("id" = Uuid, Path), ("file_id" = Uuid, Path)),
    responses(
    (status = 200, description = "Acked", body = Acked),
    (status = 400, description = "Invalid workspace or file id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Not pending (unknown, expired, acked) or another workspace's", body = ErrorBody)))]
pub async fn ack(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Acked>> {
    let file_id = file_id(&ids.1)?;
    owned_pending(&state, id, file_id).await?;
    let acked = store::uploads::ack(&state.db, file_id)
        .await
        .context("storage error")?;
    Ok(Json(Acked {
        acked: true,
        raced: (!acked).then_some(true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_original_rule() {
        assert_eq!(sanitize_filename("report 1.pdf"), "report_1.pdf");
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\x\\é.txt"), "_.txt");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename(""), "file");
        let long = format!("{}.markdown", "a".repeat(200));
        let clean = sanitize_filename(&long);
        assert_eq!(clean.len(), 100);
        assert!(clean.ends_with(".markdown"));
    }

    #[test]
    fn media_types_are_bare_and_printable() {
        assert_eq!(sanitize_mime("text/plain; charset=utf-8"), "text/plain");
        assert_eq!(sanitize_mime(""), "");
        assert_eq!(sanitize_mime("nonsense"), "application/octet-stream");
        assert_eq!(sanitize_mime("a/b/c"), "application/octet-stream");
    }

    #[test]
    fn download_paths_are_checked_in_order() {
        let message = |p: &str| check_download_path(p).err().map(|e| e.to_string());
        assert_eq!(message(""), Some("path query required".into()));
        assert_eq!(message("etc/x"), Some("path must be absolute".into()));
        assert_eq!(
            message("/etc/passwd"),
            Some("path must be under /configs, /workspace, /home, or /plugins".into())
        );
        assert_eq!(message("/workspacex/a"), message("/etc/passwd"));
        assert_eq!(message("/workspace/../etc"), Some("invalid path".into()));
        assert_eq!(message("/workspace//a"), Some("invalid path".into()));
        assert_eq!(message("/workspace/a/"), Some("invalid path".into()));
        assert_eq!(message("/workspace/a.txt"), None);
        assert_eq!(message("/home"), None);
    }

    #[test]
    fn dispositions_escape_quotes_and_encode_utf8() {
        assert_eq!(
            content_disposition("a\"b.txt"),
            "attachment; filename=\"a\\\"b.txt\"; filename*=UTF-8''a%22b.txt"
        );
    }
}
