//! Bakes the git sha into the binary for `/buildinfo`: `GIT_SHA` when set (release builds and
//! images), else `git rev-parse` of the checkout, else `dev`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    let sha = std::env::var("GIT_SHA")
        .ok()
        .filter(|sha| !sha.trim().is_empty())
        .or_else(git_head);
    println!(
        "cargo:rustc-env=WORKSPACE_SERVER_GIT_SHA={}",
        sha.as_deref().unwrap_or("dev").trim()
    );
}

fn git_head() -> Option<String> {
    let git_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    // Rebuild when HEAD moves; only watch files that exist (a missing one reruns every build).
    for watched in ["HEAD", "refs/heads"] {
        let path = git_dir.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&git_dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
