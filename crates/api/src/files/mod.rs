//! A workspace's files, wherever they live: one [`FileBackend`] trait, a backend per place
//! (`local.rs`: a folder on this server; `eic.rs`: the workspace's EC2 through the EIC pool), and
//! the dispatch that picks one from the workspace row. Adding a backend (a Docker exec one, say)
//! is a new file implementing the trait plus one arm in [`WorkspaceFiles::open`].
//!
//! Paths reach a backend only as a validated [`RelPath`] under a [`Root`].

pub mod batch_permits;
pub(crate) mod eic;
pub mod handlers;
mod local;
pub mod relpath;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Serialize;
use uuid::Uuid;

use crate::error::StoreContext;
use crate::{ApiConfig, ApiError, AppState};

pub use relpath::{RelPath, RelPathError, Root};

/// At most this many files in one replace or template import (the original's `maxUploadFiles`).
pub const MAX_FILES_PER_REQUEST: usize = 200;

/// Names a listing never shows (nor descends into), as the original pruned them.
pub const PRUNED_NAMES: [&str; 4] = [".git", "__pycache__", "node_modules", ".DS_Store"];

/// Outer guard around every operation of a backend that has no budget of its own (see
/// [`FileBackend::deadline`]).
const OPERATION_DEADLINE: Duration = Duration::from_secs(35);

/// The default of `MAX_LIST_ENTRIES`.
pub const DEFAULT_MAX_LIST_ENTRIES: usize = 10_000;

/// `MAX_LIST_ENTRIES`: the most entries one listing returns.
fn max_list_entries(config: &ApiConfig) -> usize {
    config.max_list_entries.unwrap_or(DEFAULT_MAX_LIST_ENTRIES)
}

/// A listing, cut at `MAX_LIST_ENTRIES`.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<FileEntry>,
    /// More entries existed than were returned.
    pub truncated: bool,
}

/// One entry of a listing, relative to the listed directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub dir: bool,
}

/// What a backend can fail with. Mapped to HTTP in one place ([`From<FilesError> for ApiError`]).
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("file not found")]
    NotFound,
    #[error("file larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The path resolves outside its root through a symlink.
    #[error("path escapes the workspace root")]
    Escape,
    /// A directory where a file was expected.
    #[error("path is a directory")]
    IsDirectory,
    /// A parent of the path is a file.
    #[error("a parent of the path is a file")]
    ParentIsFile,
    #[error("operation did not finish in time")]
    Timeout,
    #[error("{context}")]
    Local {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Remote(#[from] eic_pool::EicError),
}

impl FilesError {
    fn local(context: &'static str) -> impl FnOnce(std::io::Error) -> FilesError {
        move |source| FilesError::Local { context, source }
    }
}

impl From<FilesError> for ApiError {
    fn from(error: FilesError) -> ApiError {
        match error {
            FilesError::NotFound => ApiError::NotFound("file not found on workspace".into()),
            FilesError::TooLarge { limit } => too_large(limit),
            FilesError::Escape => ApiError::BadRequest("invalid path".into()),
            FilesError::IsDirectory => ApiError::BadRequest("path is a directory".into()),
            FilesError::ParentIsFile => {
                ApiError::BadRequest("a parent of the path is a file".into())
            }
            FilesError::Timeout => ApiError::Remote {
                status: http::StatusCode::GATEWAY_TIMEOUT,
                message: eic::TIMEOUT_MESSAGE.into(),
                source: None,
            },
            FilesError::Local { context, source } => ApiError::Internal {
                context: context.to_string(),
                source: source.into(),
            },
            FilesError::Remote(remote) => eic::api_error(remote),
        }
    }
}

/// 413 for a file over `MAX_FILE_BYTES`, read or written.
pub fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!("file too large (max {limit} bytes)"))
}

/// A store of files under the four roots of one workspace.
pub trait FileBackend: Send + Sync {
    /// The `source` a replace answers with (`"local"`, `"ec2-ssh"`).
    fn source(&self) -> &'static str;

    /// Entries under `dir` (the root itself when `None`) down to `depth` levels; `[]` when the
    /// directory does not exist.
    fn list<'a>(
        &'a self,
        root: Root,
        dir: Option<&'a RelPath>,
        depth: u32,
    ) -> BoxFuture<'a, Result<Vec<FileEntry>, FilesError>>;

    /// The whole file; `NotFound` when missing, `TooLarge` past `max_bytes` (never truncated).
    fn read<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, FilesError>>;

    /// Creates or replaces the file atomically, creating parent directories.
    fn write<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
        content: Bytes,
    ) -> BoxFuture<'a, Result<(), FilesError>>;

    /// Removes the file; a missing file is success.
    fn delete<'a>(&'a self, root: Root, path: &'a RelPath)
    -> BoxFuture<'a, Result<(), FilesError>>;

    /// Replaces the directory `dir` with exactly `files` (paths relative to `dir`): the new
    /// tree is written aside and moved into place, so it appears whole or not at all, and
    /// nothing of a previous version survives. Parents are created.
    fn replace_dir<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
        files: Vec<(RelPath, Bytes)>,
    ) -> BoxFuture<'a, Result<(), FilesError>>;

    /// Removes the directory `dir` and everything under it, never following a symlink;
    /// `false` when nothing was there.
    fn remove_dir<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
    ) -> BoxFuture<'a, Result<bool, FilesError>>;

    /// The outer guard around each operation (504 past it). A backend that bounds its
    /// operations itself and names the failing step answers a little more than its own budget.
    fn deadline(&self) -> Duration {
        OPERATION_DEADLINE
    }
}

/// The files of one workspace, on the backend its row selects, every operation bounded.
pub struct WorkspaceFiles {
    backend: Box<dyn FileBackend>,
    max_file_bytes: u64,
    max_list_entries: usize,
}

impl std::fmt::Debug for WorkspaceFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceFiles")
            .field("source", &self.backend.source())
            .finish()
    }
}

impl WorkspaceFiles {
    /// Looks the workspace up (one query) and picks its backend: its EC2 when the row has an
    /// `instance_id`, else its local folder. Unknown or malformed ids are 404 as in the original.
    pub async fn open(state: &AppState, raw_id: &str) -> Result<WorkspaceFiles, ApiError> {
        let not_found = ApiError::workspace_not_found;
        let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
        let target = store::file_targets::lookup(&state.db, id)
            .await
            .context("query failed")?
            .ok_or_else(not_found)?;
        let backend: Box<dyn FileBackend> = if target.instance_id.is_empty() {
            Box::new(local::LocalBackend::new(
                workspace_dir(&state.config, id),
                max_list_entries(&state.config),
            ))
        } else {
            eic::EicBackend::open(state, target.instance_id, target.runtime)?
        };
        Ok(WorkspaceFiles {
            backend,
            max_file_bytes: state.config.max_file_bytes as u64,
            max_list_entries: max_list_entries(&state.config),
        })
    }

    pub fn source(&self) -> &'static str {
        self.backend.source()
    }

    /// At most `MAX_LIST_ENTRIES` entries, and whether more were cut.
    pub async fn list(
        &self,
        root: Root,
        dir: Option<&RelPath>,
        depth: u32,
    ) -> Result<Listing, FilesError> {
        let mut entries =
            bounded(self.backend.deadline(), self.backend.list(root, dir, depth)).await?;
        let truncated = entries.len() > self.max_list_entries;
        entries.truncate(self.max_list_entries);
        Ok(Listing { entries, truncated })
    }

    pub async fn read(&self, root: Root, path: &RelPath) -> Result<Vec<u8>, FilesError> {
        bounded(
            self.backend.deadline(),
            self.backend.read(root, path, self.max_file_bytes),
        )
        .await
    }

    pub async fn write(
        &self,
        root: Root,
        path: &RelPath,
        content: Bytes,
    ) -> Result<(), FilesError> {
        bounded(
            self.backend.deadline(),
            self.backend.write(root, path, content),
        )
        .await
    }

    pub async fn delete(&self, root: Root, path: &RelPath) -> Result<(), FilesError> {
        bounded(self.backend.deadline(), self.backend.delete(root, path)).await
    }

    /// See [`FileBackend::replace_dir`].
    pub async fn replace_dir(
        &self,
        root: Root,
        dir: &RelPath,
        files: Vec<(RelPath, Bytes)>,
    ) -> Result<(), FilesError> {
        bounded(
            self.backend.deadline(),
            self.backend.replace_dir(root, dir, files),
        )
        .await
    }

    /// See [`FileBackend::remove_dir`].
    pub async fn remove_dir(&self, root: Root, dir: &RelPath) -> Result<bool, FilesError> {
        bounded(self.backend.deadline(), self.backend.remove_dir(root, dir)).await
    }
}

async fn bounded<T>(
    deadline: Duration,
    operation: BoxFuture<'_, Result<T, FilesError>>,
) -> Result<T, FilesError> {
    tokio::time::timeout(deadline, operation)
        .await
        .map_err(|_| FilesError::Timeout)?
}

/// `WORKSPACES_DIR/<id>`: the local backend's folder of one workspace.
pub fn workspace_dir(config: &ApiConfig, workspace_id: Uuid) -> std::path::PathBuf {
    config.workspaces_dir.join(workspace_id.to_string())
}

/// Removes the local folders of deleted workspaces, as the original removed their volumes
/// (`workspace.go` Delete at 624ef4d0). Best effort after the commit: a folder that cannot be
/// removed is logged and left, the delete itself has happened.
pub async fn remove_local_folders(config: &ApiConfig, ids: &[Uuid]) {
    for id in ids {
        let dir = workspace_dir(config, *id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(workspace = %id, %error, "could not remove the workspace's files")
            }
        }
    }
}

/// Copies a template's files into a new workspace's local `configs` and creates its other roots.
/// Called by workspace creation (`POST /workspaces` with a `template`) for workspaces whose files
/// are local. Symlinks and the pruned names are skipped. Returns the number of files copied.
pub async fn seed_from_template(
    config: &ApiConfig,
    workspace_id: Uuid,
    template_dir: &Path,
) -> Result<usize, FilesError> {
    let target = workspace_dir(config, workspace_id);
    let template_dir = template_dir.to_path_buf();
    tokio::task::spawn_blocking(move || local::seed(&target, &template_dir))
        .await
        .map_err(|join| FilesError::Local {
            context: "seeding task failed",
            source: std::io::Error::other(join),
        })?
}

/// Writes the whole local folder of a workspace created moments ago (its row has no instance
/// yet): `template` copied into `configs`, then `files` over it, appearing at once (see
/// `local::stage_new`). Every path is a validated [`RelPath`].
pub async fn stage_new_workspace(
    config: &ApiConfig,
    workspace_id: Uuid,
    template: Option<std::path::PathBuf>,
    files: Vec<(Root, RelPath, Bytes)>,
) -> Result<(), FilesError> {
    let workspaces_dir = config.workspaces_dir.clone();
    tokio::task::spawn_blocking(move || {
        local::stage_new(
            &workspaces_dir,
            &workspace_id.to_string(),
            template.as_deref(),
            &files,
        )
    })
    .await
    .map_err(|join| FilesError::Local {
        context: "staging task failed",
        source: std::io::Error::other(join),
    })?
}
