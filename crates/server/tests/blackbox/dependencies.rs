//! No unused dependency: every dependency a manifest declares (normal, dev and build) is named
//! in that package's sources, and every entry of `[workspace.dependencies]` is used by a member.
//! A cheap stand-in for `cargo machete`, run with every test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Dependencies a package needs without naming them in Rust code, with the reason.
const USED_WITHOUT_A_NAME: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    crate::harness::repo_root().to_path_buf()
}

/// The dependency names of a manifest's `[dependencies]`, `[dev-dependencies]` and
/// `[build-dependencies]` tables (target-specific ones included), or of `[workspace.dependencies]`
/// with `workspace_table`.
fn dependency_names(manifest: &str, workspace_table: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            let table = line.trim_matches(|c| c == '[' || c == ']');
            in_table = if workspace_table {
                table == "workspace.dependencies"
            } else {
                table.ends_with("dependencies") && !table.starts_with("workspace")
            };
            continue;
        }
        if !in_table || line.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let name = key.trim().split('.').next().unwrap_or_default();
            if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`, recursively (the `target/` of a nested workspace left out).
fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() && !path.ends_with("target") {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Whether `code` names the crate `ident` (`ident::…`, `use ident`, `ident!`-free paths).
fn names_crate(code: &str, ident: &str) -> bool {
    code.match_indices(ident).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + ident.len()..];
        let starts_word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        starts_word
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// Package directories: the workspace members and the fuzz package.
fn packages() -> Vec<PathBuf> {
    let root = root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("members = "))
        .expect("a members list");
    let mut dirs: Vec<PathBuf> = members
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|member| root.join(member.trim().trim_matches('"')))
        .collect();
    dirs.push(root.join("fuzz"));
    dirs
}

#[test]
fn every_declared_dependency_is_used_by_its_package() {
    let mut unused = Vec::new();
    for dir in packages() {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut files = Vec::new();
        rust_sources(&dir, &mut files);
        let code: String = files
            .iter()
            .map(|file| std::fs::read_to_string(file).unwrap())
            .collect();
        for name in dependency_names(&manifest, false) {
            let ident = name.replace('-', "_");
            let excused = USED_WITHOUT_A_NAME.iter().any(|(dep, _)| *dep == name);
            if !excused && !names_crate(&code, &ident) {
                unused.push(format!("{}: {name}", dir.display()));
            }
        }
    }
    assert!(unused.is_empty(), "declared but never used: {unused:#?}");
}

#[test]
fn every_workspace_dependency_is_used_by_a_member() {
    let root = root();
    let declared = dependency_names(
        &std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
        true,
    );
    let used: BTreeSet<String> = packages()
        .iter()
        .flat_map(|dir| {
            dependency_names(
                &std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(),
                false,
            )
        })
        .collect();
    let unused: Vec<_> = declared.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "[workspace.dependencies] nobody uses: {unused:?}"
    );
}

#[test]
fn the_check_recognises_uses_and_non_uses() {
    assert!(names_crate("use serde_json::json;", "serde_json"));
    assert!(names_crate(
        "let v = serde_json::Value::Null;",
        "serde_json"
    ));
    assert!(!names_crate("let my_serde_json = 1;", "serde_json"));
    assert!(!names_crate("// serde_json is nice", "serde_json"));
    let manifest = "[package]\nname = \"x\"\n[dependencies]\na.workspace = true\nb-c = \"1\"\n\
                    [dev-dependencies]\nd = { version = \"1\" }\n[[bench]]\nname = \"e\"\n";
    assert_eq!(
        dependency_names(manifest, false),
        BTreeSet::from(["a".into(), "b-c".into(), "d".into()])
    );
}
