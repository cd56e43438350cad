//! Plugin sources (`plugins/source.go`, `plugins/local.go`, `plugins/github.go` at 624ef4d0) and
//! the staging pipeline both install and download run (`resolveAndStage`,
//! `handlers/plugins_install_pipeline.go:134-259`): parse, fetch, validate ([`super::stage`]).
//!
//! `github://owner/repo#ref` is fetched with the `git` CLI: an argument vector (never a shell),
//! `--` before the URL, a timeout that kills the process, no prompt for credentials.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use axum::http::StatusCode;
use regex::Regex;
use serde_json::json;

use super::stage::{self, StageError, Tree};
use super::{PluginsConfig, validate_name};
use crate::ApiError;

/// The registered schemes, sorted (`GET /plugins/sources`).
pub const SCHEMES: [&str; 2] = ["github", "local"];

static SCHEME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-zA-Z][a-zA-Z0-9+\-.]*)://(.*)$").unwrap());
/// `plugins/local.go:38`.
static LOCAL_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]{0,127}$").unwrap());
/// `plugins/github.go:54-56`.
static GITHUB_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([a-zA-Z0-9][a-zA-Z0-9_.-]{0,99})/([a-zA-Z0-9][a-zA-Z0-9_.-]{0,99})(?:#([a-zA-Z0-9_.][a-zA-Z0-9_./-]{0,254}))?$",
    )
    .unwrap()
});
static COMMIT_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9a-f]{40}$").unwrap());

/// A parsed source: `scheme://spec`; a bare name is `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub scheme: String,
    pub spec: String,
}

impl Source {
    /// `ParseSource` (`plugins/source.go:76-104`); `None` for an empty input or spec.
    pub fn parse(raw: &str) -> Option<Source> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let (scheme, spec) = match SCHEME_RE.captures(raw) {
            Some(c) => (c[1].to_string(), c[2].trim().to_string()),
            None => ("local".to_string(), raw.to_string()),
        };
        if spec.is_empty() {
            return None;
        }
        Some(Source { scheme, spec })
    }

    /// The normalised `scheme://spec`.
    pub fn raw(&self) -> String {
        format!("{}://{}", self.scheme, self.spec)
    }
}

/// A fetched and validated plugin. Its staging folder (if it has one of its own) is removed
/// when this is dropped.
#[derive(Debug)]
pub struct Staged {
    pub name: String,
    pub source: String,
    pub tree: Tree,
    _staging: Option<StagingDir>,
}

/// A temporary folder removed on drop.
#[derive(Debug)]
struct StagingDir(PathBuf);

impl StagingDir {
    fn create() -> std::io::Result<StagingDir> {
        let dir = std::env::temp_dir().join(format!(
            "molecule-plugin-fetch-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir)?;
        Ok(StagingDir(dir))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let dir = std::mem::take(&mut self.0);
        let remove = move || {
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(%error, dir = %dir.display(), "could not remove plugin staging");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

fn bad_request(message: &str) -> ApiError {
    ApiError::BadRequest(message.to_string())
}

fn with_source(status: StatusCode, error: &str, source: &str) -> ApiError {
    ApiError::WithBody {
        status,
        body: json!({ "error": error, "source": source }),
    }
}

/// Why a fetch failed.
enum FetchError {
    NotFound,
    Timeout,
    Other(String),
}

/// `resolveAndStage`: the checks in the original's order, first failure wins. `sha256`, when
/// given, must be the SHA-256 of the plugin's `plugin.yaml`.
pub async fn resolve_and_stage(
    config: &PluginsConfig,
    raw: &str,
    sha256: Option<&str>,
) -> Result<Staged, ApiError> {
    if raw.is_empty() {
        return Err(bad_request(
            "'source' is required (e.g. \"local://my-plugin\" or \"github://owner/repo\")",
        ));
    }
    let source = Source::parse(raw).ok_or_else(|| bad_request("invalid plugin source"))?;
    let normalised = source.raw();
    if !SCHEMES.contains(&source.scheme.as_str()) {
        return Err(ApiError::WithBody {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "available_schemes": SCHEMES, "error": "failed to resolve plugin source" }),
        });
    }
    let fetched = match source.scheme.as_str() {
        "local" => {
            // Both rules at once: a name the registry could never hold is a 400 here, where
            // the original answered 502 (QUIRK 2).
            if validate_name(&source.spec).is_err() || !LOCAL_NAME_RE.is_match(&source.spec) {
                return Err(bad_request("invalid plugin name"));
            }
            let dir = config.dir.join(&source.spec);
            let max = config.max_bytes;
            let name = source.spec.clone();
            bounded(config.fetch_timeout, move || local(&dir, max))
                .await
                .map(|tree| (name, tree, None))
        }
        _ => {
            if !source.spec.contains('#') && !config.allow_unpinned {
                return Err(ApiError::WithBody {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    body: json!({
                        "error": "unpinned github source: append a tag or commit SHA (e.g. \"github://owner/repo#v1.2.0\"). Set PLUGIN_ALLOW_UNPINNED=true to override",
                        "source": normalised,
                    }),
                });
            }
            let Some(captures) = GITHUB_RE.captures(&source.spec) else {
                // Includes an empty ref (`#`): a malformed source is the caller's error (400),
                // not a fetch failure (the original's 502, QUIRK 3).
                return Err(bad_request("invalid plugin source"));
            };
            let owner = captures[1].to_string();
            let repo = captures[2].to_string();
            let reference = captures.get(3).map(|m| m.as_str().to_string());
            github(config, &owner, &repo, reference.as_deref())
                .await
                .map(|(tree, dir)| (repo, tree, Some(dir)))
        }
    };
    let (name, tree, staging) = fetched.map_err(|error| fetch_error(error, &source))?;
    let tree = tree.map_err(|error| stage_error(error, &normalised))?;
    if validate_name(&name).is_err() {
        return Err(with_source(
            StatusCode::BAD_REQUEST,
            "resolver returned invalid plugin name",
            &normalised,
        ));
    }
    if let Some(expected) = sha256.filter(|s| !s.is_empty()) {
        check_sha256(&tree, expected, &normalised)?;
    }
    Ok(Staged {
        name,
        source: normalised,
        tree,
        _staging: staging,
    })
}

fn fetch_error(error: FetchError, source: &Source) -> ApiError {
    let status = match &error {
        FetchError::NotFound => StatusCode::NOT_FOUND,
        FetchError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        FetchError::Other(detail) => {
            tracing::warn!(source = %source.raw(), detail, "plugin fetch failed");
            StatusCode::BAD_GATEWAY
        }
    };
    with_source(
        status,
        &format!("failed to fetch plugin from {}", source.scheme),
        &source.raw(),
    )
}

fn stage_error(error: StageError, source: &str) -> ApiError {
    match error {
        StageError::TooLarge | StageError::TooManyEntries => {
            with_source(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string(), source)
        }
        StageError::Integrity => {
            with_source(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string(), source)
        }
        StageError::Unsafe { ref path } => ApiError::WithBody {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({ "error": error.to_string(), "path": path, "source": source }),
        },
        StageError::Io(io) => ApiError::Internal {
            context: "failed to read staged plugin".into(),
            source: io.into(),
        },
    }
}

fn check_sha256(tree: &Tree, expected: &str, source: &str) -> Result<(), ApiError> {
    use sha2::{Digest, Sha256};
    let unprocessable =
        |message: String| with_source(StatusCode::UNPROCESSABLE_ENTITY, &message, source);
    let Some(manifest) = tree.file("plugin.yaml") else {
        return Err(unprocessable(
            "sha256 check failed: plugin.yaml not found in staged plugin".into(),
        ));
    };
    let content = tree
        .read(manifest)
        .map_err(|error| stage_error(error, source))?;
    let got = hex::encode(Sha256::digest(&content));
    if !got.eq_ignore_ascii_case(expected) {
        return Err(unprocessable(format!(
            "sha256 mismatch: expected {expected}, got {got}"
        )));
    }
    Ok(())
}

type Fetched = Result<Tree, StageError>;

/// Runs blocking fetch work within the fetch timeout.
async fn bounded(
    timeout: Duration,
    work: impl FnOnce() -> Result<Fetched, FetchError> + Send + 'static,
) -> Result<Fetched, FetchError> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Err(_) => Err(FetchError::Timeout),
        Ok(Err(join)) => Err(FetchError::Other(join.to_string())),
        Ok(Ok(result)) => result,
    }
}

/// `local://<name>`: the registry folder, validated where it lies (nothing is copied; the
/// install reads it once validated).
fn local(dir: &Path, max_bytes: u64) -> Result<Fetched, FetchError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FetchError::NotFound),
        Err(e) => Err(FetchError::Other(e.to_string())),
        Ok(meta) if !meta.is_dir() => Err(FetchError::Other("not a directory".into())),
        Ok(_) => Ok(stage::validate(dir, max_bytes)),
    }
}

/// `github://owner/repo[#ref]`: a shallow clone of `<base>/<owner>/<repo>.git` at `ref` (a
/// branch, a tag, or a full commit SHA, which the original could not fetch: QUIRK 3).
async fn github(
    config: &PluginsConfig,
    owner: &str,
    repo: &str,
    reference: Option<&str>,
) -> Result<(Fetched, StagingDir), FetchError> {
    let staging = StagingDir::create().map_err(|e| FetchError::Other(e.to_string()))?;
    let checkout = staging.0.join("repo");
    let url = format!("{}/{owner}/{repo}.git", config.github_base_url);
    let checkout_arg = checkout.to_string_lossy().into_owned();
    let steps: Vec<Vec<String>> = match reference {
        Some(sha) if COMMIT_RE.is_match(sha) => vec![
            vec!["init".into(), "-q".into(), checkout_arg.clone()],
            vec![
                "-C".into(),
                checkout_arg.clone(),
                "fetch".into(),
                "-q".into(),
                "--depth=1".into(),
                "--".into(),
                url,
                sha.into(),
            ],
            vec![
                "-C".into(),
                checkout_arg,
                "checkout".into(),
                "-q".into(),
                "FETCH_HEAD".into(),
            ],
        ],
        _ => {
            let mut clone = vec![
                "clone".into(),
                "-q".into(),
                "--depth=1".into(),
                "--single-branch".into(),
            ];
            if let Some(reference) = reference {
                clone.extend(["--branch".into(), reference.into()]);
            }
            clone.extend(["--".into(), url, checkout_arg]);
            vec![clone]
        }
    };
    let deadline = tokio::time::Instant::now() + config.fetch_timeout;
    for args in steps {
        run_git(&args, deadline).await?;
    }
    let max = config.max_bytes;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let tree = bounded(remaining, move || Ok(stage::validate(&checkout, max))).await?;
    Ok((tree, staging))
}

async fn run_git(args: &[String], deadline: tokio::time::Instant) -> Result<(), FetchError> {
    let mut command = tokio::process::Command::new("git");
    command
        .args(args)
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| FetchError::Other(format!("git: {e}")))?;
    let output = match tokio::time::timeout_at(deadline, child.wait_with_output()).await {
        Err(_) => return Err(FetchError::Timeout),
        Ok(Err(e)) => return Err(FetchError::Other(format!("git: {e}"))),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    let not_found = [
        "repository not found",
        "could not find remote branch",
        "not found in upstream",
        "does not appear to be a git repository",
        "couldn't find remote ref",
        "not our ref",
        "unable to read tree",
    ];
    if not_found.iter().any(|marker| stderr.contains(marker))
        || (stderr.contains("remote branch") && stderr.contains("not found"))
    {
        return Err(FetchError::NotFound);
    }
    Err(FetchError::Other(stderr.chars().take(500).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_like_the_original() {
        let local = Source::parse(" foo ").unwrap();
        assert_eq!(local.raw(), "local://foo");
        assert_eq!(Source::parse("local://").map(|s| s.raw()), None);
        assert_eq!(Source::parse("   "), None);
        let gh = Source::parse("github://o/r#v1").unwrap();
        assert_eq!((gh.scheme.as_str(), gh.spec.as_str()), ("github", "o/r#v1"));
        assert_eq!(Source::parse("owner/repo").unwrap().scheme, "local");
        assert!(GITHUB_RE.is_match("o/r#v1.2.0"));
        assert!(!GITHUB_RE.is_match("o/r#"));
        assert!(!GITHUB_RE.is_match("o/r#-x"));
        assert!(!GITHUB_RE.is_match("../r"));
    }
}
