//! `entrypoint-tenant.sh`, run for real under `/bin/sh` with a fake `workspace-server` that
//! records how it was called, and `shellcheck` over every shell script of the repository.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::repo_root;

const REQUIRED: [&str; 4] = [
    "DATABASE_URL",
    "MOLECULE_ORG_ID",
    "ADMIN_TOKEN",
    "SECRETS_ENCRYPTION_KEY",
];

/// A fake `workspace-server` in its own directory. Each call appends `<pid> <args>` to `calls`;
/// `migrate` fails its first `failures` calls like an unreachable database would.
struct FakeServer {
    dir: tempfile::TempDir,
}

impl FakeServer {
    fn new(migrate_failures: u32) -> Self {
        Self::failing_with(migrate_failures, 3)
    }

    /// Like [`FakeServer::new`], `migrate` failing with exit status `status`.
    fn failing_with(migrate_failures: u32, status: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let count = dir.path().join("migrate-count");
        let script = format!(
            r#"#!/bin/sh
echo "$$ $*" >> '{calls}'
if [ "$1" = migrate ]; then
    n=$(cat '{count}' 2>/dev/null || echo 0)
    n=$((n + 1))
    echo "$n" > '{count}'
    if [ "$n" -le {migrate_failures} ]; then
        echo "fake workspace-server: database unreachable" >&2
        exit {status}
    fi
fi
exit 0
"#,
            calls = calls.display(),
            count = count.display(),
        );
        let path = dir.path().join("workspace-server");
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        FakeServer { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("workspace-server")
    }

    /// The recorded calls as (pid, arguments).
    fn calls(&self) -> Vec<(u32, String)> {
        let text = fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let (pid, args) = line.split_once(' ').unwrap_or((line, ""));
                (pid.parse().unwrap(), args.to_string())
            })
            .collect()
    }

    /// A PATH with the fake first, then the system directories `sh`, `cat` and `sleep` live in.
    fn path_env(&self) -> String {
        format!("{}:/usr/local/bin:/usr/bin:/bin", self.dir.path().display())
    }
}

/// Runs the entrypoint with exactly `env` (nothing inherited) and `args`; returns its pid and
/// output.
fn run_entrypoint(env: &[(&str, &str)], args: &[&str]) -> (u32, Output) {
    let mut command = Command::new(repo_root().join("entrypoint-tenant.sh"));
    command.env_clear().envs(env.iter().copied()).args(args);
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

fn full_env(fake: &str) -> Vec<(&str, &str)> {
    vec![
        ("PATH", fake),
        ("DATABASE_URL", "postgres://tenant@db:5432/tenant"),
        ("MOLECULE_ORG_ID", "org-123"),
        ("ADMIN_TOKEN", "admin-secret"),
        (
            "SECRETS_ENCRYPTION_KEY",
            "jVs8GWm7tzu8mSRJhBQAI9w4vqpYdJLcAwu1+VidMP4=",
        ),
        ("DB_RETRY_INTERVAL_SECONDS", "1"),
    ]
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_missing_variable_is_named_on_its_own_line() {
    let fake = FakeServer::new(0);
    let path = fake.path_env();
    let (_, output) = run_entrypoint(&[("PATH", &path)], &[]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    for name in REQUIRED {
        let line = format!("entrypoint: required environment variable {name} is not set");
        assert_eq!(
            stderr.lines().filter(|l| *l == line).count(),
            1,
            "{name} in:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.lines().count(),
        REQUIRED.len(),
        "one line per variable:\n{stderr}"
    );
    assert!(
        fake.calls().is_empty(),
        "the server must not run: {:?}",
        fake.calls()
    );
}

#[test]
fn an_empty_variable_counts_as_missing() {
    let fake = FakeServer::new(0);
    let path = fake.path_env();
    let mut env = full_env(&path);
    env.retain(|(name, _)| *name != "MOLECULE_ORG_ID");
    env.push(("ADMIN_TOKEN", ""));
    let (_, output) = run_entrypoint(&env, &[]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).lines().collect::<Vec<_>>(),
        [
            "entrypoint: required environment variable MOLECULE_ORG_ID is not set",
            "entrypoint: required environment variable ADMIN_TOKEN is not set",
        ]
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn migrates_then_execs_the_server_with_its_arguments() {
    let fake = FakeServer::new(0);
    let path = fake.path_env();
    let (pid, output) = run_entrypoint(&full_env(&path), &["--port", "9000"]);

    assert!(output.status.success(), "stderr:\n{}", stderr(&output));
    let calls = fake.calls();
    let args: Vec<&str> = calls.iter().map(|(_, args)| args.as_str()).collect();
    assert_eq!(args, ["migrate", "serve --port 9000"]);
    // `exec` replaced the shell: the server runs as the entrypoint's own process, so the
    // container's SIGTERM reaches it. `migrate` ran as a child.
    assert_eq!(
        calls[1].0, pid,
        "serve must run in the entrypoint's process"
    );
    assert_ne!(calls[0].0, pid, "migrate runs as a child process");
}

#[test]
fn the_binary_can_be_named_explicitly() {
    let fake = FakeServer::new(0);
    let bin = fake.bin();
    let bin = bin.to_str().unwrap();
    let mut env = full_env("/usr/bin:/bin");
    env.push(("WORKSPACE_SERVER_BIN", bin));
    let (pid, output) = run_entrypoint(&env, &[]);

    assert!(output.status.success(), "stderr:\n{}", stderr(&output));
    let calls = fake.calls();
    assert_eq!(
        calls.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>(),
        ["migrate", "serve"]
    );
    assert_eq!(calls[1].0, pid);
}

#[test]
fn waits_for_the_database_by_retrying_migrate() {
    let fake = FakeServer::new(2);
    let path = fake.path_env();
    let mut env = full_env(&path);
    env.push(("DB_WAIT_SECONDS", "30"));
    let (pid, output) = run_entrypoint(&env, &[]);

    assert!(output.status.success(), "stderr:\n{}", stderr(&output));
    let calls = fake.calls();
    let args: Vec<&str> = calls.iter().map(|(_, args)| args.as_str()).collect();
    assert_eq!(args, ["migrate", "migrate", "migrate", "serve"]);
    assert_eq!(calls[3].0, pid);
    let stderr = stderr(&output);
    assert_eq!(
        stderr
            .matches("entrypoint: database not ready, retrying in 1s")
            .count(),
        2,
        "{stderr}"
    );
}

#[test]
fn gives_up_when_the_database_never_answers() {
    let fake = FakeServer::new(u32::MAX);
    let path = fake.path_env();
    let mut env = full_env(&path);
    env.push(("DB_WAIT_SECONDS", "2"));
    let (_, output) = run_entrypoint(&env, &[]);

    assert_eq!(output.status.code(), Some(1));
    let calls = fake.calls();
    assert!(
        calls.iter().all(|(_, args)| args == "migrate"),
        "never serves: {calls:?}"
    );
    assert_eq!(calls.len(), 3, "attempts at 0 s, 1 s and 2 s: {calls:?}");
    let stderr = stderr(&output);
    assert!(
        stderr.contains(
            "entrypoint: migrations did not succeed within 2s (DB_WAIT_SECONDS); giving up"
        ),
        "{stderr}"
    );
}

#[test]
fn a_malformed_wait_is_refused() {
    let fake = FakeServer::new(0);
    let path = fake.path_env();
    let mut env = full_env(&path);
    env.push(("DB_WAIT_SECONDS", "1m"));
    let (_, output) = run_entrypoint(&env, &[]);

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("DB_WAIT_SECONDS must be a whole number of seconds, got '1m'")
    );
    assert!(fake.calls().is_empty());
}

/// Every shell script of the repository: `*.sh` files and files whose first line is a `sh` or
/// `bash` shebang (so extension-less `scripts/*` are included).
fn shell_scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            if !matches!(name.as_ref(), ".git" | "target" | "node_modules" | "data") {
                shell_scripts(&path, found);
            }
        } else if file_type.is_file() && is_shell_script(&path) {
            found.push(path);
        }
    }
}

fn is_shell_script(path: &Path) -> bool {
    if path.extension().is_some_and(|ext| ext == "sh") {
        return true;
    }
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line);
    first_line.starts_with("#!")
        && ["/sh", "/bash", "env sh", "env bash", "/dash"]
            .iter()
            .any(|shell| first_line.trim_end().ends_with(shell))
}

#[test]
fn every_shell_script_passes_shellcheck() {
    let installed = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "shellcheck is not installed; CI must install it (apt-get install -y shellcheck)"
        );
        eprintln!(
            "shellcheck SKIPPED: not installed (apt-get install -y shellcheck); CI=true makes this fail"
        );
        return;
    }
    let mut scripts = Vec::new();
    shell_scripts(repo_root(), &mut scripts);
    scripts.sort();
    assert!(
        scripts.iter().any(|p| p.ends_with("entrypoint-tenant.sh")),
        "the script search must find the entrypoint: {scripts:?}"
    );
    // `-x` follows sourced files; their `# shellcheck source=` paths are relative to the root.
    let output = Command::new("shellcheck")
        .arg("-x")
        .args(&scripts)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shellcheck failed on {scripts:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn stops_retrying_when_migrate_says_retrying_cannot_help() {
    // Exit status 2: a configuration or schema fault.
    let fake = FakeServer::failing_with(u32::MAX, 2);
    let path = fake.path_env();
    let mut env = full_env(&path);
    env.push(("DB_WAIT_SECONDS", "30"));
    let (_, output) = run_entrypoint(&env, &[]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(fake.calls().len(), 1, "one attempt only");
    let stderr = stderr(&output);
    assert!(stderr.contains("retrying cannot fix"), "{stderr}");
    assert!(!stderr.contains("retrying in"), "{stderr}");
}
