//! File operations over SFTP: no path ever reaches a shell.
//!
//! One SFTP session per pooled connection, shared by all its concurrent operations (SFTP
//! requests carry ids, so they interleave on one channel): the warm path pays no channel open,
//! no `exec` and no SFTP handshake. Independent requests are pipelined (sent before awaiting),
//! and the first operation travels right behind the session's `init`, without waiting for the
//! server's version (the server answers in order, so the version still arrives first).

mod temp_files;
mod tree;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared, poll_immediate, try_join_all};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use crate::error::{cause, cause_msg};
use crate::{EicError, RemoteEntry};

/// Names the listing skips entirely (as the original's template walk does).
const PRUNED: [&str; 4] = [".git", "__pycache__", "node_modules", ".DS_Store"];
/// Bytes asked per read request; a server may answer with fewer (handled), and the reply must
/// fit russh-sftp's 256 KiB packet limit.
const READ_CHUNK: u32 = 128 * 1024;
/// Bytes per write request: 32 KiB is what every SFTP server must accept. (We do not ask for
/// `limits@openssh.com`: it would cost a round trip on every connection setup.)
const WRITE_CHUNK: usize = 32 * 1024;
/// Read or write requests in flight at once for one file.
const REQUESTS_IN_FLIGHT: usize = 16;
const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// Directories remembered as swept of stale temporary files, per connection.
const SWEPT_DIRECTORIES_KEPT: usize = 1024;

/// What the server said in its `version` reply, shared by every operation of the session.
type Started = Shared<BoxFuture<'static, Result<Capabilities, EicError>>>;

#[derive(Debug, Clone, Copy)]
struct Capabilities {
    posix_rename: bool,
}

/// An SFTP session on one channel of a pooled SSH connection.
pub(crate) struct RemoteFs {
    raw: Arc<RawSftpSession>,
    started: Started,
    /// Directories this connection already swept of stale temporary files.
    swept: Mutex<HashSet<String>>,
}

impl RemoteFs {
    /// Speaks SFTP over an already started SFTP server (its channel's stream): sends `init` and
    /// returns without waiting for the reply; every operation waits for it alongside its own
    /// requests ([`Self::once_started`]). `explain` turns a failed `init` into the error every
    /// operation then reports (it should say why the server did not start).
    pub(crate) async fn start<S>(
        stream: S,
        request_timeout_secs: u64,
        explain: impl FnOnce(EicError) -> EicError + Send + 'static,
    ) -> Result<Self, EicError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let config = russh_sftp::client::Config {
            request_timeout_secs,
            ..Default::default()
        };
        let raw = Arc::new(RawSftpSession::new_with_config(stream, config));
        let session = raw.clone();
        let mut started: Started = async move {
            match session.init().await {
                Ok(version) => Ok(Capabilities {
                    posix_rename: version
                        .extensions
                        .get(POSIX_RENAME)
                        .is_some_and(|v| v == "1"),
                }),
                Err(err) => Err(explain(channel_error(err))),
            }
        }
        .boxed()
        .shared();
        // The first poll sends `init`, so that it precedes every request of the operations.
        if let Some(Err(err)) = poll_immediate(&mut started).await {
            return Err(err);
        }
        Ok(Self {
            raw,
            started,
            swept: Mutex::default(),
        })
    }

    /// Runs `operation` while waiting for the server's `version` (at once after the first
    /// operation). When the server did not start, its explanation wins over the operation's
    /// own (then meaningless) channel error.
    pub(crate) async fn once_started<T>(
        &self,
        operation: impl Future<Output = Result<T, EicError>>,
    ) -> Result<T, EicError> {
        let (started, result) = tokio::join!(self.started.clone(), operation);
        started?;
        result
    }

    async fn capabilities(&self) -> Result<Capabilities, EicError> {
        self.started.clone().await
    }

    /// The whole file; `NotFound` if missing (or a directory), `TooLarge` above `max_bytes`.
    pub(crate) async fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, EicError> {
        let handle = self
            .raw
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(sftp_error)?
            .handle;
        let result = self.read_open(&handle, max_bytes).await;
        // Nothing to learn from the close's reply: send it without waiting a round trip.
        let raw = self.raw.clone();
        tokio::spawn(async move {
            if let Err(err) = raw.close(handle).await {
                tracing::debug!(error = %err, "closing a read handle failed");
            }
        });
        result
    }

    async fn read_open(&self, handle: &str, max_bytes: u64) -> Result<Vec<u8>, EicError> {
        // The size check and the first chunk travel together: one round trip for small files.
        let (attrs, first) =
            tokio::join!(self.raw.fstat(handle), self.raw.read(handle, 0, READ_CHUNK));
        let attrs = attrs.map_err(sftp_error)?.attrs;
        if attrs.file_type().is_dir() {
            return Err(EicError::NotFound);
        }
        let size = attrs.size.unwrap_or(0);
        if size > max_bytes {
            return Err(EicError::TooLarge {
                size,
                limit: max_bytes,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        if !append_chunk(&mut data, first)? {
            return Ok(data);
        }
        // The rest in batches of concurrent requests, up to the size seen by fstat (which saves
        // the round trip that would only say EOF); a short reply makes the next batch start
        // where it ended, and reading past the size (the file grew) goes on until EOF.
        loop {
            let at = data.len() as u64;
            if at > max_bytes {
                return Err(EicError::TooLarge {
                    size: at,
                    limit: max_bytes,
                });
            }
            let batch = if at < size {
                (size - at)
                    .div_ceil(READ_CHUNK as u64)
                    .min(REQUESTS_IN_FLIGHT as u64)
            } else if at == size {
                return Ok(data);
            } else {
                1
            };
            let offsets = (0..batch).map(|i| at + i * READ_CHUNK as u64);
            let replies = futures_util::future::join_all(
                offsets.map(|o| self.raw.read(handle, o, READ_CHUNK)),
            )
            .await;
            for reply in replies {
                let before = data.len();
                if !append_chunk(&mut data, reply)? {
                    return Ok(data);
                }
                if data.len() - before < READ_CHUNK as usize {
                    break; // short reply: later chunks start at the wrong offset
                }
            }
        }
    }

    /// Atomic write: a temporary sibling, mode 0644, renamed over the target. Parents are
    /// created. A failure leaves the target as it was and removes the temporary file (if the
    /// channel still works; otherwise a later write to the directory sweeps it).
    pub(crate) async fn write(
        &self,
        path: &str,
        temp: &str,
        contents: &[u8],
    ) -> Result<(), EicError> {
        let (dir, name) = split_parent(path)?;
        let handle = match self.create(temp).await {
            Err(EicError::NotFound) => {
                self.create_dirs(dir).await?;
                self.create(temp).await?
            }
            other => other?,
        };
        let written = self.write_open(&handle, contents).await;
        let closed = self.raw.close(handle).await.map_err(sftp_error);
        let result = match (written, closed) {
            (Ok(()), Ok(_)) => self.rename_over(temp, path).await,
            (Err(err), _) | (Ok(()), Err(err)) => Err(err),
        };
        match result {
            Ok(()) => self.sweep_once(dir, name),
            // Best effort: on a broken channel this fails too, and the pool removes the temp
            // file on the instance's next lease (`EicPool::write_file`).
            Err(_) => drop(self.raw.remove(temp.to_owned()).await),
        }
        result
    }

    /// After the first successful write into `dir` on this connection, removes in the
    /// background the temporary files that writes broken off earlier left there.
    fn sweep_once(&self, dir: &str, written: &str) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if swept.len() >= SWEPT_DIRECTORIES_KEPT {
                swept.clear();
            }
            if !swept.insert(dir.to_owned()) {
                return;
            }
        }
        let raw = self.raw.clone();
        let (dir, written) = (dir.to_owned(), written.to_owned());
        tokio::spawn(async move {
            match temp_files::sweep(&raw, &dir, &written).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(dir, removed, "removed stale temporary files"),
                Err(err) => tracing::debug!(error = %err, dir, "sweeping temporary files failed"),
            }
        });
    }

    async fn create(&self, path: &str) -> Result<String, EicError> {
        let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
        Ok(self
            .raw
            .open(path, flags, mode(0o644))
            .await
            .map_err(sftp_error)?
            .handle)
    }

    async fn write_open(&self, handle: &str, contents: &[u8]) -> Result<(), EicError> {
        // The mode is set explicitly too: the open's mode is subject to the server's umask.
        let chmod = async {
            self.raw
                .fsetstat(handle, mode(0o644))
                .await
                .map(|_| ())
                .map_err(sftp_error)
        };
        let chunks = async {
            let chunks: Vec<(u64, &[u8])> = contents
                .chunks(WRITE_CHUNK)
                .scan(0u64, |offset, chunk| {
                    let at = *offset;
                    *offset += chunk.len() as u64;
                    Some((at, chunk))
                })
                .collect();
            for batch in chunks.chunks(REQUESTS_IN_FLIGHT) {
                try_join_all(batch.iter().map(|(offset, chunk)| async move {
                    self.raw
                        .write(handle, *offset, chunk.to_vec())
                        .await
                        .map(|_| ())
                        .map_err(sftp_error)
                }))
                .await?;
            }
            Ok(())
        };
        tokio::try_join!(chmod, chunks).map(|_| ())
    }

    async fn rename_over(&self, from: &str, to: &str) -> Result<(), EicError> {
        if self.capabilities().await?.posix_rename {
            let mut data = Vec::with_capacity(8 + from.len() + to.len());
            for s in [from, to] {
                data.extend_from_slice(&(s.len() as u32).to_be_bytes());
                data.extend_from_slice(s.as_bytes());
            }
            return match self.raw.extended(POSIX_RENAME, data).await {
                Ok(Packet::Status(status)) if status.status_code == StatusCode::Ok => Ok(()),
                Ok(Packet::Status(status)) => Err(sftp_error(SftpError::Status(status))),
                Ok(_) => Err(EicError::Sftp {
                    source: cause_msg("unexpected reply to posix-rename"),
                }),
                Err(err) => Err(sftp_error(err)),
            };
        }
        // Plain SFTP rename refuses to replace a file: remove first (briefly not atomic).
        match self.raw.remove(to).await {
            Ok(_) => {}
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
            Err(err) => return Err(sftp_error(err)),
        }
        self.raw
            .rename(from, to)
            .await
            .map(|_| ())
            .map_err(sftp_error)
    }

    /// `mkdir -p`: finds the deepest existing ancestor, then creates the rest downwards.
    async fn create_dirs(&self, dir: &str) -> Result<(), EicError> {
        let mut missing = Vec::new();
        let mut current = dir;
        loop {
            match self.raw.stat(current).await {
                Ok(found) if found.attrs.file_type().is_dir() => break,
                Ok(_) => {
                    return Err(EicError::Sftp {
                        source: cause_msg(format!("{current} is not a directory")),
                    });
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                    missing.push(current);
                    match current.rsplit_once('/') {
                        Some((parent, _)) if !parent.is_empty() => current = parent,
                        _ => break,
                    }
                }
                Err(err) => return Err(sftp_error(err)),
            }
        }
        for dir in missing.into_iter().rev() {
            if let Err(err) = self.raw.mkdir(dir, mode(0o755)).await {
                // Someone else may have created it meanwhile.
                let exists = self
                    .raw
                    .stat(dir)
                    .await
                    .is_ok_and(|s| s.attrs.file_type().is_dir());
                if !exists {
                    return Err(sftp_error(err));
                }
            }
        }
        Ok(())
    }

    /// Removes a file; a missing file is fine.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), EicError> {
        match self.raw.remove(path).await {
            Ok(_) => Ok(()),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(()),
            Err(err) => Err(sftp_error(err)),
        }
    }

    /// Entries under `dir` down to `depth` levels, paths relative to `dir`, pruned and sorted.
    /// A missing `dir` is an empty list. Directories of one level are read concurrently.
    pub(crate) async fn list(&self, dir: &str, depth: u32) -> Result<Vec<RemoteEntry>, EicError> {
        let root = if dir.len() > 1 {
            dir.trim_end_matches('/')
        } else {
            dir
        };
        let mut entries = Vec::new();
        let mut level = vec![String::new()];
        for current_depth in 1..=depth.max(1) {
            let listings = try_join_all(level.iter().map(|relative| async move {
                let absolute = join(root, relative);
                match read_dir(&self.raw, &absolute).await {
                    Err(EicError::NotFound) => Ok((relative, Vec::new())),
                    other => other.map(|files| (relative, files)),
                }
            }))
            .await?;
            let mut next = Vec::new();
            for (parent, files) in listings {
                for (name, attrs) in files {
                    if name == "." || name == ".." || PRUNED.contains(&name.as_str()) {
                        continue;
                    }
                    let path = if parent.is_empty() {
                        name
                    } else {
                        format!("{parent}/{name}")
                    };
                    let is_dir = attrs.file_type().is_dir();
                    if is_dir && current_depth < depth {
                        next.push(path.clone());
                    }
                    let size = if is_dir { 0 } else { attrs.size.unwrap_or(0) };
                    entries.push(RemoteEntry {
                        path,
                        size,
                        dir: is_dir,
                    });
                }
            }
            level = next;
            if level.is_empty() {
                break;
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }
}

/// The entries of one directory, with their attributes.
async fn read_dir(
    raw: &RawSftpSession,
    path: &str,
) -> Result<Vec<(String, FileAttributes)>, EicError> {
    let handle = raw.opendir(path).await.map_err(sftp_error)?.handle;
    let mut files = Vec::new();
    let result = loop {
        match raw.readdir(handle.as_str()).await {
            Ok(name) => files.extend(name.files.into_iter().map(|f| (f.filename, f.attrs))),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
            Err(err) => break Err(sftp_error(err)),
        }
    };
    let closed = raw.close(handle).await.map_err(sftp_error);
    result.and(closed).map(|_| files)
}

/// Appends one read reply; `false` at end of file.
fn append_chunk(
    data: &mut Vec<u8>,
    reply: Result<russh_sftp::protocol::Data, SftpError>,
) -> Result<bool, EicError> {
    match reply {
        Ok(chunk) if chunk.data.is_empty() => Ok(false),
        Ok(chunk) => {
            data.extend_from_slice(&chunk.data);
            Ok(true)
        }
        Err(SftpError::Status(status)) if status.status_code == StatusCode::Eof => Ok(false),
        Err(err) => Err(sftp_error(err)),
    }
}

fn mode(bits: u32) -> FileAttributes {
    FileAttributes {
        permissions: Some(bits),
        ..FileAttributes::empty()
    }
}

fn join(root: &str, relative: &str) -> String {
    match (relative.is_empty(), root.ends_with('/')) {
        (true, _) => root.to_owned(),
        (false, true) => format!("{root}{relative}"),
        (false, false) => format!("{root}/{relative}"),
    }
}

/// A fresh temporary sibling for an atomic write of `path` (`.<name>.tmp-<16 hex>`).
pub(crate) fn temp_path_for(path: &str) -> Result<String, EicError> {
    let (dir, name) = split_parent(path)?;
    Ok(temp_files::temp_path(dir, name, rand::random()))
}

fn split_parent(path: &str) -> Result<(&str, &str), EicError> {
    match path.rsplit_once('/') {
        Some((dir, name)) if !name.is_empty() && !dir.is_empty() => Ok((dir, name)),
        _ => Err(EicError::Sftp {
            source: cause_msg(format!("not a file path under a directory: {path:?}")),
        }),
    }
}

/// A status from the server is the server's answer (`NoSuchFile` → `NotFound`,
/// `PermissionDenied` → `PermissionDenied`: the instance refused even root); anything else
/// means the channel failed, which poisons the connection.
fn sftp_error(err: SftpError) -> EicError {
    match err {
        SftpError::Status(status) if status.status_code == StatusCode::NoSuchFile => {
            EicError::NotFound
        }
        SftpError::Status(status) if status.status_code == StatusCode::PermissionDenied => {
            EicError::PermissionDenied
        }
        SftpError::Status(_) | SftpError::Limited(_) => EicError::Sftp { source: cause(err) },
        other => channel_error(other),
    }
}

fn channel_error(err: SftpError) -> EicError {
    EicError::SftpChannel { source: cause(err) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    async fn read_packet(server: &mut DuplexStream) -> Vec<u8> {
        let len = server.read_u32().await.unwrap();
        let mut packet = vec![0; len as usize];
        server.read_exact(&mut packet).await.unwrap();
        packet
    }

    async fn write_packet(server: &mut DuplexStream, packet: &[u8]) {
        server.write_u32(packet.len() as u32).await.unwrap();
        server.write_all(packet).await.unwrap();
    }

    #[tokio::test]
    async fn the_first_operation_is_sent_before_the_version_reply() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let fs = RemoteFs::start(client, 5, |err| err).await.unwrap();
        let read = tokio::spawn(async move { fs.once_started(fs.read("/x", 10)).await });
        // Both the init and the open arrive before the server says anything.
        assert_eq!(read_packet(&mut server).await, [1, 0, 0, 0, 3]); // SSH_FXP_INIT, v3
        // (Without pipelining the open would wait for a version that never comes.)
        let open =
            tokio::time::timeout(std::time::Duration::from_secs(10), read_packet(&mut server))
                .await
                .expect("the open was sent without waiting for the version");
        assert_eq!(open[0], 3, "SSH_FXP_OPEN expected, got {open:?}");
        write_packet(&mut server, &[2, 0, 0, 0, 3]).await; // SSH_FXP_VERSION, v3
        let mut status = vec![101]; // SSH_FXP_STATUS
        status.extend_from_slice(&open[1..5]); // the open's request id
        status.extend_from_slice(&2u32.to_be_bytes()); // SSH_FX_NO_SUCH_FILE
        status.extend_from_slice(&[0; 8]); // empty message and language tag
        write_packet(&mut server, &status).await;
        assert!(matches!(read.await.unwrap(), Err(EicError::NotFound)));
    }

    #[tokio::test]
    async fn a_server_that_did_not_start_explains_the_failure_of_every_operation() {
        let (client, server) = tokio::io::duplex(1024);
        drop(server); // the command exited at once
        let explain = |_| EicError::SftpChannel {
            source: cause_msg("sudo: a password is required"),
        };
        let err = match RemoteFs::start(client, 5, explain).await {
            Err(err) => err,
            Ok(fs) => fs.once_started(fs.read("/x", 10)).await.unwrap_err(),
        };
        assert!(err.is_transport(), "{err:?}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(source, "sudo: a password is required");
    }

    #[test]
    fn split_parent_needs_a_directory_and_a_name() {
        assert_eq!(
            split_parent("/configs/a.yaml").unwrap(),
            ("/configs", "a.yaml")
        );
        assert_eq!(split_parent("/a/b/c").unwrap(), ("/a/b", "c"));
        assert!(split_parent("/top").is_err());
        assert!(split_parent("/configs/").is_err());
    }

    #[test]
    fn join_keeps_single_slashes() {
        assert_eq!(join("/configs", ""), "/configs");
        assert_eq!(join("/configs", "a/b"), "/configs/a/b");
        assert_eq!(join("/", "etc"), "/etc");
    }
}
