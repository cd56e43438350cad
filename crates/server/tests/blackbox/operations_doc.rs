//! `docs/operations.md` documents every setting the server reads: each `env = "NAME"` of the
//! configuration (`crates/server/src/config.rs`) must appear in its settings table.

use crate::harness::repo_root;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[test]
fn every_setting_of_the_server_is_documented() {
    let config = repo_file("crates/server/src/config.rs");
    let operations = repo_file("docs/operations.md");
    let settings: Vec<&str> = config
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        settings.len() > 10,
        "the configuration's settings were found: {settings:?}"
    );
    let undocumented: Vec<&&str> = settings
        .iter()
        .filter(|name| !operations.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "add these to the settings table of docs/operations.md: {undocumented:?}"
    );
}
