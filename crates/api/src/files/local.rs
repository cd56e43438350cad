//! The local backend: `WORKSPACES_DIR/<id>/{configs,workspace,home,plugins}` on this server.
//!
//! Confinement: a path is resolved one component at a time from the (canonical) root; a symlink
//! is followed only when its canonical target is still inside the root, so neither a read nor a
//! write can leave it. Writes go to a temporary sibling and are renamed over the target, so a
//! reader sees the old file or the new one, never a half-written one; the rename replaces a
//! symlink at the target rather than writing through it.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::{FileBackend, FileEntry, FilesError, PRUNED_NAMES, RelPath, Root};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    workspace_dir: PathBuf,
    /// A listing stops after this many entries plus one (the one says it was cut).
    max_entries: usize,
}

impl LocalBackend {
    pub fn new(workspace_dir: PathBuf, max_entries: usize) -> LocalBackend {
        LocalBackend {
            workspace_dir,
            max_entries,
        }
    }

    fn root_dir(&self, root: Root) -> PathBuf {
        self.workspace_dir.join(root.local_dir_name())
    }
}

/// Runs blocking filesystem work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
) -> Result<T, FilesError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| FilesError::Local {
            context: "file task failed",
            source: io::Error::other(join),
        })?
}

impl FileBackend for LocalBackend {
    fn source(&self) -> &'static str {
        "local"
    }

    fn list<'a>(
        &'a self,
        root: Root,
        dir: Option<&'a RelPath>,
        depth: u32,
    ) -> BoxFuture<'a, Result<Vec<FileEntry>, FilesError>> {
        let root_dir = self.root_dir(root);
        let dir = dir.cloned();
        let limit = self.max_entries.saturating_add(1);
        Box::pin(blocking(move || {
            list(&root_dir, dir.as_ref(), depth, limit)
        }))
    }

    fn read<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, FilesError>> {
        let root_dir = self.root_dir(root);
        let path = path.clone();
        Box::pin(blocking(move || read(&root_dir, &path, max_bytes)))
    }

    fn write<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
        content: Bytes,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        let root_dir = self.root_dir(root);
        let path = path.clone();
        Box::pin(blocking(move || write(&root_dir, &path, &content)))
    }

    fn delete<'a>(
        &'a self,
        root: Root,
        path: &'a RelPath,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        let root_dir = self.root_dir(root);
        let path = path.clone();
        Box::pin(blocking(move || delete(&root_dir, &path)))
    }

    fn replace_dir<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
        files: Vec<(RelPath, Bytes)>,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        let root_dir = self.root_dir(root);
        let dir = dir.clone();
        Box::pin(blocking(move || replace_dir(&root_dir, &dir, &files)))
    }

    fn remove_dir<'a>(
        &'a self,
        root: Root,
        dir: &'a RelPath,
    ) -> BoxFuture<'a, Result<bool, FilesError>> {
        let root_dir = self.root_dir(root);
        let dir = dir.clone();
        Box::pin(blocking(move || remove_dir(&root_dir, &dir)))
    }
}

/// A directory known to be the root or inside it, with its canonical path.
struct Confined {
    root: PathBuf,
}

/// Where resolving a path stopped.
enum Resolved {
    /// Every component exists; the canonical path (inside the root).
    Found(PathBuf),
    /// The component at this index does not exist; the canonical path of its parent.
    MissingFrom(PathBuf, usize),
}

impl Confined {
    /// The canonical root, or `None` when it does not exist yet.
    fn open(root: &Path) -> Result<Option<Confined>, FilesError> {
        match fs::canonicalize(root) {
            Ok(root) => Ok(Some(Confined { root })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FilesError::Local {
                context: "failed to open workspace folder",
                source: e,
            }),
        }
    }

    /// Creates the root when missing.
    fn create(root: &Path) -> Result<Confined, FilesError> {
        fs::create_dir_all(root).map_err(FilesError::local("failed to create workspace folder"))?;
        Confined::open(root)?.ok_or(FilesError::Escape)
    }

    /// Resolves `components` from the root, following symlinks only while they stay inside.
    fn resolve<'p>(
        &self,
        components: impl Iterator<Item = &'p str>,
    ) -> Result<Resolved, FilesError> {
        let mut current = self.root.clone();
        for (index, component) in components.enumerate() {
            let next = current.join(component);
            match fs::symlink_metadata(&next) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(Resolved::MissingFrom(current, index));
                }
                Err(e) => {
                    return Err(FilesError::Local {
                        context: "failed to resolve path",
                        source: e,
                    });
                }
                Ok(meta) if meta.file_type().is_symlink() => {
                    // A dangling link could be created through, to anywhere: refuse it.
                    let target = fs::canonicalize(&next).map_err(|_| FilesError::Escape)?;
                    if !target.starts_with(&self.root) {
                        return Err(FilesError::Escape);
                    }
                    current = target;
                }
                Ok(_) => current = next,
            }
        }
        Ok(Resolved::Found(current))
    }

    fn resolve_existing(&self, path: &RelPath) -> Result<Option<PathBuf>, FilesError> {
        Ok(match self.resolve(path.components())? {
            Resolved::Found(found) => Some(found),
            Resolved::MissingFrom(..) => None,
        })
    }

    /// The canonical parent directory of `path`, created (as real directories) when missing.
    fn parent_for_write(&self, path: &RelPath) -> Result<PathBuf, FilesError> {
        let parents: Vec<&str> = path.components().collect();
        let parents = &parents[..parents.len() - 1];
        match self.resolve(parents.iter().copied())? {
            Resolved::Found(dir) => Ok(dir),
            Resolved::MissingFrom(mut dir, index) => {
                for component in &parents[index..] {
                    dir.push(component);
                    match fs::create_dir(&dir) {
                        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                            return Err(FilesError::ParentIsFile);
                        }
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                            return Err(FilesError::Local {
                                context: "failed to create directory",
                                source: e,
                            });
                        }
                        _ => {}
                    }
                    // Raced with someone creating a link here: resolve again from the root.
                    if fs::symlink_metadata(&dir)
                        .map(|m| m.file_type().is_symlink())
                        .unwrap_or(true)
                    {
                        return Err(FilesError::Escape);
                    }
                }
                Ok(dir)
            }
        }
    }
}

fn list(
    root: &Path,
    dir: Option<&RelPath>,
    depth: u32,
    limit: usize,
) -> Result<Vec<FileEntry>, FilesError> {
    let Some(confined) = Confined::open(root)? else {
        return Ok(Vec::new());
    };
    let start = match dir {
        None => confined.root.clone(),
        Some(dir) => match confined.resolve_existing(dir)? {
            Some(found) => found,
            None => return Ok(Vec::new()),
        },
    };
    let mut entries = Vec::new();
    if start.is_dir() {
        walk(&confined, &start, "", depth, limit, &mut entries)?;
    }
    Ok(entries)
}

/// Pre-order, names sorted: what the original's template-folder walk produced.
// Over 60 lines: one recursive walk whose pruning, symlink and depth rules read best together.
fn walk(
    confined: &Confined,
    dir: &Path,
    prefix: &str,
    depth: u32,
    limit: usize,
    entries: &mut Vec<FileEntry>,
) -> Result<(), FilesError> {
    let mut children: Vec<_> = fs::read_dir(dir)
        .map_err(FilesError::local("failed to list directory"))?
        .filter_map(Result::ok)
        .collect();
    children.sort_by_key(|entry| entry.file_name());
    for child in children {
        if entries.len() >= limit {
            return Ok(());
        }
        let Ok(name) = child.file_name().into_string() else {
            continue;
        };
        if PRUNED_NAMES.contains(&name.as_str()) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(child.path()) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if meta.file_type().is_symlink() {
            // Shown only when it points inside the root; never descended (no cycles).
            match fs::canonicalize(child.path()) {
                Ok(target) if target.starts_with(&confined.root) => {
                    let Ok(target_meta) = fs::metadata(&target) else {
                        continue;
                    };
                    let size = if target_meta.is_dir() {
                        0
                    } else {
                        target_meta.len()
                    };
                    entries.push(FileEntry {
                        path: rel,
                        size,
                        dir: target_meta.is_dir(),
                    });
                }
                _ => {}
            }
            continue;
        }
        if meta.is_dir() {
            entries.push(FileEntry {
                path: rel.clone(),
                size: 0,
                dir: true,
            });
            if depth > 1 {
                walk(confined, &child.path(), &rel, depth - 1, limit, entries)?;
            }
        } else {
            entries.push(FileEntry {
                path: rel,
                size: meta.len(),
                dir: false,
            });
        }
    }
    Ok(())
}

fn read(root: &Path, path: &RelPath, max_bytes: u64) -> Result<Vec<u8>, FilesError> {
    let confined = Confined::open(root)?.ok_or(FilesError::NotFound)?;
    let found = confined
        .resolve_existing(path)?
        .ok_or(FilesError::NotFound)?;
    let file = fs::File::open(&found).map_err(FilesError::local("failed to open file"))?;
    let meta = file
        .metadata()
        .map_err(FilesError::local("failed to stat file"))?;
    if meta.is_dir() {
        return Err(FilesError::IsDirectory);
    }
    if meta.len() > max_bytes {
        return Err(FilesError::TooLarge { limit: max_bytes });
    }
    // Read one byte past the limit so a file that grew since the stat is refused, not truncated.
    let mut content = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut content)
        .map_err(FilesError::local("failed to read file"))?;
    if content.len() as u64 > max_bytes {
        return Err(FilesError::TooLarge { limit: max_bytes });
    }
    Ok(content)
}

fn write(root: &Path, path: &RelPath, content: &[u8]) -> Result<(), FilesError> {
    let confined = Confined::create(root)?;
    let parent = confined.parent_for_write(path)?;
    let target = parent.join(path.file_name());
    if fs::symlink_metadata(&target)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        return Err(FilesError::IsDirectory);
    }
    let temp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = write_new_file(&temp, content).and_then(|()| fs::rename(&temp, &target));
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(FilesError::Local {
            context: "failed to write file",
            source,
        });
    }
    Ok(())
}

fn write_new_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

fn delete(root: &Path, path: &RelPath) -> Result<(), FilesError> {
    let Some(confined) = Confined::open(root)? else {
        return Ok(());
    };
    let parents: Vec<&str> = path.components().collect();
    let parent = match confined.resolve(parents[..parents.len() - 1].iter().copied())? {
        Resolved::Found(parent) => parent,
        Resolved::MissingFrom(..) => return Ok(()),
    };
    let target = parent.join(path.file_name());
    match fs::symlink_metadata(&target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(meta) if meta.is_dir() => Err(FilesError::IsDirectory),
        _ => match fs::remove_file(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other.map_err(FilesError::local("failed to delete file")),
        },
    }
}

/// A fresh hidden sibling name of `name` (`.<name>.<kind>-<uuid>`).
fn sibling(parent: &Path, name: &str, kind: &str) -> PathBuf {
    parent.join(format!(".{name}.{kind}-{}", uuid::Uuid::new_v4().simple()))
}

/// Writes `files` into a fresh hidden sibling of `dir`, then renames it over `dir` (the old
/// version, if any, renamed aside first and removed after): readers see the old tree or the
/// new one. The sibling is ours and new, and the paths are `RelPath`s, so nothing under it can
/// be a symlink.
fn replace_dir(root: &Path, dir: &RelPath, files: &[(RelPath, Bytes)]) -> Result<(), FilesError> {
    let confined = Confined::create(root)?;
    let parent = confined.parent_for_write(dir)?;
    let target = parent.join(dir.file_name());
    let temp = sibling(&parent, dir.file_name(), "tmp");
    let filled = fill(&temp, files);
    if let Err(error) = filled {
        let _ = fs::remove_dir_all(&temp);
        return Err(error);
    }
    let old = sibling(&parent, dir.file_name(), "old");
    let moved_old = match fs::rename(&target, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            let _ = fs::remove_dir_all(&temp);
            return Err(FilesError::Local {
                context: "failed to replace directory",
                source,
            });
        }
    };
    if let Err(source) = fs::rename(&temp, &target) {
        if moved_old {
            let _ = fs::rename(&old, &target);
        }
        let _ = fs::remove_dir_all(&temp);
        return Err(FilesError::Local {
            context: "failed to replace directory",
            source,
        });
    }
    if moved_old {
        remove_any(&old).map_err(FilesError::local("failed to remove old directory"))?;
    }
    Ok(())
}

fn fill(temp: &Path, files: &[(RelPath, Bytes)]) -> Result<(), FilesError> {
    fs::create_dir(temp).map_err(FilesError::local("failed to create directory"))?;
    for (path, content) in files {
        let target = temp.join(path.as_str());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(FilesError::local("failed to create directory"))?;
        }
        write_new_file(&target, content).map_err(FilesError::local("failed to write file"))?;
    }
    Ok(())
}

/// Removes a directory tree (not following symlinks) or a single file or link.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    }
}

fn remove_dir(root: &Path, dir: &RelPath) -> Result<bool, FilesError> {
    let Some(confined) = Confined::open(root)? else {
        return Ok(false);
    };
    let parents: Vec<&str> = dir.components().collect();
    let parent = match confined.resolve(parents[..parents.len() - 1].iter().copied())? {
        Resolved::Found(parent) => parent,
        Resolved::MissingFrom(..) => return Ok(false),
    };
    let target = parent.join(dir.file_name());
    if fs::symlink_metadata(&target).is_err() {
        return Ok(false);
    }
    // Renamed aside first, so the directory disappears at once rather than file by file.
    let aside = sibling(&parent, dir.file_name(), "old");
    match fs::rename(&target, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(FilesError::Local {
                context: "failed to remove directory",
                source,
            });
        }
    }
    remove_any(&aside).map_err(FilesError::local("failed to remove directory"))?;
    Ok(true)
}

/// Copies `template` into `workspace/configs` and creates the other roots.
pub fn seed(workspace: &Path, template: &Path) -> Result<usize, FilesError> {
    for root in Root::ALL {
        fs::create_dir_all(workspace.join(root.local_dir_name()))
            .map_err(FilesError::local("failed to create workspace folder"))?;
    }
    copy_tree(template, &workspace.join(Root::Configs.local_dir_name()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<usize, FilesError> {
    let mut copied = 0;
    for entry in fs::read_dir(from).map_err(FilesError::local("failed to read template"))? {
        let entry = entry.map_err(FilesError::local("failed to read template"))?;
        let name = entry.file_name();
        if PRUNED_NAMES.iter().any(|pruned| name == *pruned) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(FilesError::local("failed to read template"))?;
        let target = to.join(&name);
        if kind.is_dir() {
            fs::create_dir_all(&target).map_err(FilesError::local("failed to create directory"))?;
            copied += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)
                .map_err(FilesError::local("failed to copy template file"))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Builds the whole folder of a new workspace beside its place (`.staging-<id>`) — the roots,
/// `template` copied into `configs`, then `files` written over it — and renames it into place,
/// so the workspace's files appear whole or not at all. The staging folder is removed on failure.
pub fn stage_new(
    workspaces_dir: &Path,
    id: &str,
    template: Option<&Path>,
    files: &[(Root, RelPath, Bytes)],
) -> Result<(), FilesError> {
    fs::create_dir_all(workspaces_dir)
        .map_err(FilesError::local("failed to create workspaces folder"))?;
    let staging = workspaces_dir.join(format!(".staging-{id}"));
    let target = workspaces_dir.join(id);
    let _ = fs::remove_dir_all(&staging);
    let built = (|| {
        for root in Root::ALL {
            fs::create_dir_all(staging.join(root.local_dir_name()))
                .map_err(FilesError::local("failed to create workspace folder"))?;
        }
        if let Some(template) = template {
            copy_tree(template, &staging.join(Root::Configs.local_dir_name()))?;
            // Secrets travel as encrypted workspace secrets, never as a plaintext `.env`.
            let _ = fs::remove_file(staging.join(Root::Configs.local_dir_name()).join(".env"));
        }
        for (root, path, content) in files {
            // A fresh folder holding no symlink (the copy skips them): joining the validated
            // components cannot leave it.
            let mut file = staging.join(root.local_dir_name());
            for component in path.components() {
                file.push(component);
            }
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent).map_err(|_| FilesError::ParentIsFile)?;
            }
            if file.is_dir() {
                return Err(FilesError::IsDirectory);
            }
            fs::write(&file, content).map_err(FilesError::local("failed to write file"))?;
        }
        if target.exists() {
            return Err(FilesError::Local {
                context: "workspace folder already exists",
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        fs::rename(&staging, &target).map_err(FilesError::local("failed to move workspace folder"))
    })();
    if built.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    built
}
