//! Whole directories over SFTP: a tree written into a temporary sibling and renamed into place
//! (it appears whole or not at all), and a recursive removal. Requests are pipelined on the
//! session's one channel: directories of one level are created together, files are written
//! [`FILES_IN_FLIGHT`] at a time, never one round trip per file in sequence.

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;

use super::{RemoteFs, join, mode, read_dir, sftp_error, split_parent};
use crate::EicError;

/// Files being written at once by one tree write.
const FILES_IN_FLIGHT: usize = 32;
/// Entries being removed at once by one tree removal.
const REMOVALS_IN_FLIGHT: usize = 64;

/// Runs `futures` at most `limit` at a time; the first error wins. (Boxed first: a stream of
/// borrowing closures trips the compiler's `Send` inference.)
async fn all<'a, T: Send + 'a>(
    futures: Vec<BoxFuture<'a, Result<T, EicError>>>,
    limit: usize,
) -> Result<Vec<T>, EicError> {
    stream::iter(futures)
        .buffer_unordered(limit)
        .try_collect()
        .await
}

impl RemoteFs {
    /// Writes `files` (paths relative to `dir`, already validated) into `temp`, then renames
    /// `temp` over `dir`; an existing `dir` is first renamed to `old` and removed after. On a
    /// failure before the swap, `dir` is untouched and `temp` is removed (best effort).
    pub(crate) async fn write_tree(
        &self,
        dir: &str,
        temp: &str,
        old: &str,
        files: &[(String, bytes::Bytes)],
    ) -> Result<(), EicError> {
        let (parent, _) = split_parent(dir)?;
        self.create_dirs(parent).await?;
        let written = self.fill(temp, files).await;
        if let Err(err) = written {
            let _ = self.remove_tree(temp).await;
            return Err(err);
        }
        let moved_old = match self.raw.rename(dir, old).await {
            Ok(_) => true,
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => false,
            Err(err) => {
                let _ = self.remove_tree(temp).await;
                return Err(sftp_error(err));
            }
        };
        if let Err(err) = self.raw.rename(temp, dir).await {
            // Put the previous version back; the new one is dropped.
            if moved_old {
                let _ = self.raw.rename(old, dir).await;
            }
            let _ = self.remove_tree(temp).await;
            return Err(sftp_error(err));
        }
        if moved_old {
            self.remove_tree(old).await?;
        }
        Ok(())
    }

    /// Creates `temp`, its directories level by level, then the files, pipelined.
    async fn fill(&self, temp: &str, files: &[(String, bytes::Bytes)]) -> Result<(), EicError> {
        self.raw
            .mkdir(temp, mode(0o755))
            .await
            .map_err(sftp_error)?;
        let mut dirs: Vec<&str> = files
            .iter()
            .flat_map(|(path, _)| {
                path.char_indices()
                    .filter(|(_, c)| *c == '/')
                    .map(|(at, _)| &path[..at])
            })
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        let depth = |d: &str| d.matches('/').count();
        let deepest = dirs.iter().map(|d| depth(d)).max().unwrap_or(0);
        for level in 0..=deepest {
            let batch: Vec<BoxFuture<'_, Result<(), EicError>>> = dirs
                .iter()
                .filter(|d| depth(d) == level)
                .map(|d| {
                    let path = join(temp, d);
                    async move {
                        self.raw
                            .mkdir(path, mode(0o755))
                            .await
                            .map(|_| ())
                            .map_err(sftp_error)
                    }
                    .boxed()
                })
                .collect();
            all(batch, REMOVALS_IN_FLIGHT).await?;
        }
        let writes: Vec<BoxFuture<'_, Result<(), EicError>>> = files
            .iter()
            .map(|(path, contents)| {
                let path = join(temp, path);
                async move {
                    let handle = self.create(&path).await?;
                    let written = self.write_open(&handle, contents).await;
                    let closed = self.raw.close(handle).await.map_err(sftp_error);
                    written.and(closed.map(|_| ()))
                }
                .boxed()
            })
            .collect();
        all(writes, FILES_IN_FLIGHT).await?;
        Ok(())
    }

    /// Removes `dir` and everything under it without following symlinks; `false` when it did
    /// not exist. A file (or symlink) at `dir` is removed as such.
    pub(crate) async fn remove_tree(&self, dir: &str) -> Result<bool, EicError> {
        match self.raw.lstat(dir).await {
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                return Ok(false);
            }
            Err(err) => return Err(sftp_error(err)),
            Ok(found) if !found.attrs.file_type().is_dir() => {
                self.delete(dir).await?;
                return Ok(true);
            }
            Ok(_) => {}
        }
        // Breadth first: every directory's listing, then files removed together, then
        // directories deepest first.
        let mut dirs = vec![dir.to_owned()];
        let mut files = Vec::new();
        let mut level = vec![dir.to_owned()];
        while !level.is_empty() {
            let reads: Vec<BoxFuture<'_, Result<_, EicError>>> = level
                .iter()
                .map(|d| {
                    let d = d.clone();
                    async move { read_dir(&self.raw, &d).await.map(|entries| (d, entries)) }.boxed()
                })
                .collect();
            let listings = all(reads, REMOVALS_IN_FLIGHT).await?;
            let mut next = Vec::new();
            for (parent, entries) in listings {
                for (name, attrs) in entries {
                    if name == "." || name == ".." {
                        continue;
                    }
                    let path = join(&parent, &name);
                    if attrs.file_type().is_dir() {
                        next.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
            dirs.extend(next.iter().cloned());
            level = next;
        }
        let removals: Vec<BoxFuture<'_, Result<(), EicError>>> =
            files.iter().map(|f| self.delete(f).boxed()).collect();
        all(removals, REMOVALS_IN_FLIGHT).await?;
        // Deepest level first, each level's directories together.
        let depth = |d: &String| d.matches('/').count();
        let mut levels: Vec<usize> = dirs.iter().map(depth).collect();
        levels.sort_unstable();
        levels.dedup();
        for level in levels.into_iter().rev() {
            let rmdirs: Vec<BoxFuture<'_, Result<(), EicError>>> = dirs
                .iter()
                .filter(|d| depth(d) == level)
                .map(|d| {
                    let d = d.clone();
                    async move {
                        match self.raw.rmdir(d).await {
                            Ok(_) => Ok(()),
                            Err(SftpError::Status(s))
                                if s.status_code == StatusCode::NoSuchFile =>
                            {
                                Ok(())
                            }
                            Err(err) => Err(sftp_error(err)),
                        }
                    }
                    .boxed()
                })
                .collect();
            all(rmdirs, REMOVALS_IN_FLIGHT).await?;
        }
        Ok(true)
    }
}
