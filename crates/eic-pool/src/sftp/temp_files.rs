//! The temporary siblings of atomic writes (`.<name>.tmp-<16 hex digits>`), and the sweep of those
//! a tunnel dropped mid-write left behind.

use std::time::Duration;

use russh_sftp::client::RawSftpSession;

use super::{join, read_dir};
use crate::EicError;

/// A temporary file this old (by the server's clock) has no writer any more: writes are bounded
/// by the operation timeout, far below this.
const STALE_AFTER: Duration = Duration::from_secs(60);
const MARKER: &str = ".tmp-";

/// Where `write` puts the bytes for `dir/name` before renaming them over it.
pub(super) fn temp_path(dir: &str, name: &str, random: u64) -> String {
    format!("{dir}/.{name}{MARKER}{random:016x}")
}

/// Whether `file_name` is exactly what [`temp_path`] makes (and nothing else).
pub(super) fn is_temp_name(file_name: &str) -> bool {
    let Some((target, suffix)) = file_name
        .strip_prefix('.')
        .and_then(|rest| rest.rsplit_once(MARKER))
    else {
        return false;
    };
    !target.is_empty()
        && suffix.len() == 16
        && suffix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes the stale temporary files of `dir`. "Stale" is judged by the server's clock: against
/// the modification time of `written`, a file of `dir` just written (so clock skew between this
/// server and the instance does not matter). Returns how many were removed.
pub(super) async fn sweep(
    raw: &RawSftpSession,
    dir: &str,
    written: &str,
) -> Result<usize, EicError> {
    let entries = read_dir(raw, dir).await?;
    let Some(now) = entries
        .iter()
        .find(|(name, _)| name == written)
        .and_then(|(_, attrs)| attrs.mtime)
    else {
        return Ok(0); // replaced meanwhile: no reference time, try on another connection
    };
    let stale_before = u64::from(now).saturating_sub(STALE_AFTER.as_secs());
    let mut removed = 0;
    for (name, attrs) in &entries {
        let stale = attrs
            .mtime
            .is_some_and(|mtime| u64::from(mtime) <= stale_before);
        if is_temp_name(name) && attrs.file_type().is_file() && stale {
            match raw.remove(join(dir, name)).await {
                Ok(_) => removed += 1,
                Err(err) => {
                    tracing::debug!(error = %err, file = name, "removing a stale temporary file failed")
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_exact_temporary_names_match() {
        for random in [0, 1, 0xdead_beef, u64::MAX] {
            let path = temp_path("/configs", "config.yaml", random);
            let name = path.rsplit('/').next().unwrap();
            assert!(is_temp_name(name), "{name}");
        }
        for name in [
            "config.yaml",
            "..tmp-0123456789abcdef",
            "doc.tmp-0123456789abcdef",
            ".doc.tmp-0123456789ABCDEF",
            ".doc.tmp-0123456789abcde",
            ".doc.tmp-0123456789abcdef0",
            ".doc.tmp-0123456789abcdef.bak",
            ".doc.tmp-0123456789abcdeg",
        ] {
            assert!(!is_temp_name(name), "{name}");
        }
        assert!(is_temp_name(".a.tmp-b.tmp-0123456789abcdef"));
    }
}
