//! The EIC backend: the workspace's EC2 instance, through the shared `eic_pool::EicPool`.
//! Also the one mapping of EIC faults to HTTP: told apart by variant, never a 500 for a remote
//! fault, the remote detail logged (through the error's source) but never sent.

use std::time::Duration;

use bytes::Bytes;
use eic_pool::{EicError, EicPool, RemoteEntry, Step};
use futures_util::future::BoxFuture;
use http::StatusCode;

use super::{FileBackend, FileEntry, FilesError, RelPath, Root};
use crate::{ApiError, AppState};

/// What the outer guard adds to the pool's own operation budget, so that the pool's timeout
/// (which names the step) normally fires first.
const GUARD_MARGIN: Duration = Duration::from_secs(2);

/// The 504 body of an operation that ran out of time.
pub const TIMEOUT_MESSAGE: &str = "workspace host did not answer in time";

/// The files of one workspace on its instance: `root` is mapped to a remote directory by the
/// workspace's runtime (the original's map, see [`Root::remote_dir`]).
#[derive(Debug)]
pub struct EicBackend {
    pool: EicPool,
    instance_id: String,
    runtime: String,
}

impl EicBackend {
    /// The backend of a workspace on `instance_id`; 409 when this server has no EIC pool.
    pub fn open(
        state: &AppState,
        instance_id: String,
        runtime: String,
    ) -> Result<Box<dyn FileBackend>, ApiError> {
        let pool = state
            .eic
            .clone()
            .ok_or_else(|| unavailable("EIC is not configured on this server"))?;
        Ok(Box::new(EicBackend {
            pool,
            instance_id,
            runtime,
        }))
    }

    /// The absolute remote path: a `RelPath` joined under the root's directory (it cannot leave it).
    fn remote_path(&self, root: Root, path: Option<&RelPath>) -> String {
        let base = root.remote_dir(&self.runtime);
        match path {
            Some(path) => format!("{base}/{path}"),
            None => base.to_string(),
        }
    }
}

impl FileBackend for EicBackend {
    fn source(&self) -> &'static str {
        "ec2-ssh"
    }

    fn deadline(&self) -> Duration {
        self.pool.operation_timeout() + GUARD_MARGIN
    }

    fn list<'a>(
        &'a self,
        root: Root,
        dir: Option<&'a RelPath>,
        depth: u32,
    ) -> BoxFuture<'a, Result<Vec<FileEntry>, FilesError>> {
        Box::pin(async move {
            let entries = self
                .pool
                .list_dir(&self.instance_id, &self.remote_path(root, dir), depth)
                .await?;
            Ok(entries
                .into_iter()
                .map(|RemoteEntry { path, size, dir }| FileEntry { path, size, dir })
                .collect())
        })
    }

    fn read<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, FilesError>> {
        Box::pin(async move {
            Ok(self
                .pool
                .read_file(
                    &self.instance_id,
                    &self.remote_path(root, Some(path)),
                    max_bytes,
                )
                .await?)
        })
    }

    fn write<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
        content: Bytes,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            Ok(self
                .pool
                .write_file(
                    &self.instance_id,
                    &self.remote_path(root, Some(path)),
                    &content,
                )
                .await?)
        })
    }

    fn delete<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            Ok(self
                .pool
                .delete_file(&self.instance_id, &self.remote_path(root, Some(path)))
                .await?)
        })
    }

    fn replace_dir<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
        files: Vec<(RelPath, Bytes)>,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        self.replace_dir_boxed(root, dir, files)
    }

    fn remove_dir<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
    ) -> BoxFuture<'a, Result<bool, FilesError>> {
        Box::pin(async move {
            Ok(self
                .pool
                .remove_tree(&self.instance_id, &self.remote_path(root, Some(dir)))
                .await?)
        })
    }
}

impl EicBackend {
    fn replace_dir_boxed<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
        files: Vec<(RelPath, Bytes)>,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            let files: Vec<(String, Bytes)> = files
                .into_iter()
                .map(|(path, content)| (path.as_str().to_owned(), content))
                .collect();
            Ok(self
                .pool
                .write_tree(
                    &self.instance_id,
                    &self.remote_path(root, Some(dir)),
                    &files,
                )
                .await?)
        })
    }
}

fn unavailable(reason: &str) -> ApiError {
    ApiError::Remote {
        status: StatusCode::CONFLICT,
        message: format!("workspace instance is unavailable: {reason}"),
        source: None,
    }
}

/// How the step is named in messages to the client.
pub fn step_name(step: Step) -> &'static str {
    match step {
        Step::Discovery => "discovery",
        Step::KeyPush => "key push",
        Step::Tunnel => "tunnel",
        Step::Ssh => "SSH",
        Step::Sftp => "SFTP",
        Step::Shell => "shell",
        Step::Operation => "operation",
    }
}

/// Maps an EIC fault to its status, by variant.
pub fn api_error(error: EicError) -> ApiError {
    let remote = |status: StatusCode, message: String, error: EicError| ApiError::Remote {
        status,
        message,
        source: Some(Box::new(error)),
    };
    match error {
        EicError::NotFound => ApiError::NotFound("file not found on workspace".into()),
        EicError::PermissionDenied => remote(StatusCode::FORBIDDEN, error.to_string(), error),
        EicError::TooLarge { limit, .. } => super::too_large(limit),
        EicError::Timeout { .. } => {
            remote(StatusCode::GATEWAY_TIMEOUT, TIMEOUT_MESSAGE.into(), error)
        }
        EicError::InstanceUnavailable { ref reason, .. } => remote(
            StatusCode::CONFLICT,
            format!("workspace instance is unavailable: {reason}"),
            error.clone(),
        ),
        EicError::Discovery { .. }
        | EicError::KeyPush { .. }
        | EicError::Tunnel { .. }
        | EicError::Ssh { .. }
        | EicError::Sftp { .. }
        | EicError::SftpChannel { .. }
        | EicError::Shell { .. } => {
            let step = error.step().map_or("connection", step_name);
            remote(
                StatusCode::BAD_GATEWAY,
                format!("workspace host unreachable: {step} failed"),
                error,
            )
        }
        EicError::SetupAborted => remote(
            StatusCode::BAD_GATEWAY,
            "workspace host unreachable: connection setup failed".into(),
            error,
        ),
        EicError::ShellsFull { .. } => remote(StatusCode::CONFLICT, error.to_string(), error),
        EicError::Closed => ApiError::Unavailable {
            message: "server is shutting down".into(),
            code: "shutting_down",
            source: None,
        },
        EicError::InvalidConfig(_) => ApiError::internal("EIC is misconfigured")(error),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn status_and_message(error: EicError) -> (StatusCode, String) {
        let api = api_error(error);
        (api.status(), api.to_string())
    }

    #[test]
    fn remote_faults_map_by_variant_and_never_to_500() {
        let cause =
            || -> eic_pool::Cause { Arc::new(std::io::Error::other("secret remote detail")) };
        let unreachable = |step: &str| {
            (
                StatusCode::BAD_GATEWAY,
                format!("workspace host unreachable: {step} failed"),
            )
        };
        let cases = [
            (
                EicError::Discovery { source: cause() },
                unreachable("discovery"),
            ),
            (
                EicError::KeyPush { source: cause() },
                unreachable("key push"),
            ),
            (EicError::Tunnel { source: cause() }, unreachable("tunnel")),
            (EicError::Ssh { source: cause() }, unreachable("SSH")),
            (EicError::Sftp { source: cause() }, unreachable("SFTP")),
            (
                EicError::SftpChannel { source: cause() },
                unreachable("SFTP"),
            ),
            (
                EicError::Timeout { step: Step::Tunnel },
                (StatusCode::GATEWAY_TIMEOUT, TIMEOUT_MESSAGE.to_string()),
            ),
            (
                EicError::InstanceUnavailable {
                    instance_id: "i-1".into(),
                    reason: "instance is stopped".into(),
                },
                (
                    StatusCode::CONFLICT,
                    "workspace instance is unavailable: instance is stopped".into(),
                ),
            ),
            (
                EicError::NotFound,
                (StatusCode::NOT_FOUND, "file not found on workspace".into()),
            ),
            (
                EicError::TooLarge { size: 10, limit: 5 },
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "file too large (max 5 bytes)".into(),
                ),
            ),
            (
                EicError::SetupAborted,
                (
                    StatusCode::BAD_GATEWAY,
                    "workspace host unreachable: connection setup failed".into(),
                ),
            ),
        ];
        for (error, expected) in cases {
            let got = status_and_message(error);
            assert!(!got.1.contains("secret"), "{got:?}");
            assert_eq!(got, expected);
        }
        assert_eq!(
            status_and_message(EicError::Closed).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
