//! A fetched plugin, validated whole before anything is written: every entry a [`RelPath`]
//! (no `..`, no absolute path, no control character), no symlink or special file anywhere
//! (the original followed symlinks, pulling host files in: QUIRK 4), at most
//! `MAX_PLUGIN_BYTES` and [`MAX_PLUGIN_ENTRIES`] (sizes from metadata: nothing is read before
//! the caps pass), then the `manifest.json` digest (`plugins/supply_chain.go:23-85`).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::MAX_PLUGIN_ENTRIES;
use crate::files::RelPath;

/// Why a tree was refused.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("staged plugin exceeds size limit")]
    TooLarge,
    #[error("staged plugin has too many entries")]
    TooManyEntries,
    /// A symlink, a special file or a name that is not a safe relative path.
    #[error("plugin contains an unsafe entry")]
    Unsafe { path: String },
    #[error("plugin manifest integrity check failed")]
    Integrity,
    #[error("failed to read staged plugin")]
    Io(#[from] io::Error),
}

/// One regular file of a staged plugin.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub path: RelPath,
    pub size: u64,
}

/// A validated tree: `root` holds exactly `dirs` and `files` (sorted by path).
#[derive(Debug)]
pub struct Tree {
    pub root: PathBuf,
    pub dirs: Vec<RelPath>,
    pub files: Vec<StagedFile>,
}

/// Walks `root` (skipping a top-level `.git`, which a clone leaves) and validates it.
pub fn validate(root: &Path, max_bytes: u64) -> Result<Tree, StageError> {
    let mut tree = Tree {
        root: root.to_path_buf(),
        dirs: Vec::new(),
        files: Vec::new(),
    };
    let mut total = 0u64;
    walk(root, "", max_bytes, &mut total, &mut tree)?;
    tree.dirs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    tree.files
        .sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    check_manifest(&tree)?;
    Ok(tree)
}

fn walk(
    dir: &Path,
    prefix: &str,
    max_bytes: u64,
    total: &mut u64,
    tree: &mut Tree,
) -> Result<(), StageError> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let raw = entry.file_name();
        let shown = raw.to_string_lossy().into_owned();
        let joined = if prefix.is_empty() {
            shown.clone()
        } else {
            format!("{prefix}/{shown}")
        };
        if prefix.is_empty() && shown == ".git" {
            continue;
        }
        let unsafe_entry = || StageError::Unsafe {
            path: joined.clone(),
        };
        let name = raw.to_str().ok_or_else(unsafe_entry)?;
        let path = RelPath::parse(&joined).map_err(|_| unsafe_entry())?;
        if path.file_name() != name {
            return Err(unsafe_entry());
        }
        if tree.dirs.len() + tree.files.len() >= MAX_PLUGIN_ENTRIES {
            return Err(StageError::TooManyEntries);
        }
        let meta = fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            tree.dirs.push(path);
            walk(&entry.path(), &joined, max_bytes, total, tree)?;
        } else if meta.is_file() {
            *total = total.saturating_add(meta.len());
            if *total > max_bytes {
                return Err(StageError::TooLarge);
            }
            tree.files.push(StagedFile {
                path,
                size: meta.len(),
            });
        } else {
            return Err(unsafe_entry());
        }
    }
    Ok(())
}

impl Tree {
    /// The file's bytes, never more than its validated size (a file that grew is refused).
    pub fn read(&self, file: &StagedFile) -> Result<Bytes, StageError> {
        let mut content = Vec::with_capacity(file.size as usize);
        fs::File::open(self.root.join(file.path.as_str()))?
            .take(file.size + 1)
            .read_to_end(&mut content)?;
        if content.len() as u64 != file.size {
            return Err(StageError::Io(io::Error::other("staged file changed")));
        }
        Ok(Bytes::from(content))
    }

    /// Every file with its bytes (the whole plugin, already capped by `MAX_PLUGIN_BYTES`).
    pub fn read_all(&self) -> Result<Vec<(RelPath, Bytes)>, StageError> {
        self.files
            .iter()
            .map(|file| Ok((file.path.clone(), self.read(file)?)))
            .collect()
    }

    pub fn file(&self, path: &str) -> Option<&StagedFile> {
        self.files.iter().find(|f| f.path.as_str() == path)
    }
}

/// The supply-chain check: a top-level `manifest.json` with a `sha256` must match the digest
/// of the tree (sorted `<path>\0<content>` of every file but itself).
fn check_manifest(tree: &Tree) -> Result<(), StageError> {
    let Some(manifest) = tree.file("manifest.json") else {
        return Ok(());
    };
    if manifest.size > 1024 * 1024 {
        return Err(StageError::Integrity);
    }
    let content = tree.read(manifest)?;
    let value: serde_json::Value =
        serde_json::from_slice(&content).map_err(|_| StageError::Integrity)?;
    let expected = match value.get("sha256") {
        None => return Ok(()),
        Some(serde_json::Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(StageError::Integrity),
    };
    if digest(tree)? != expected {
        return Err(StageError::Integrity);
    }
    Ok(())
}

/// The tree's digest as the original computes it. The files are sorted by path, which is the
/// order of the `<path>\0<content>` strings (NUL sorts before every path byte).
pub fn digest(tree: &Tree) -> Result<String, StageError> {
    let mut hasher = Sha256::new();
    for file in &tree.files {
        if file.path.as_str() == "manifest.json" {
            continue;
        }
        hasher.update(file.path.as_str().as_bytes());
        hasher.update([0u8]);
        let mut reader = fs::File::open(tree.root.join(file.path.as_str()))?;
        io::copy(&mut reader, &mut HashWriter(&mut hasher))?;
    }
    Ok(hex::encode(hasher.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
