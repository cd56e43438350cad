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

/// The alert rules are valid Prometheus rules. promtool comes with the Debian package
/// `prometheus` (`.ci/run` installs it); without it this test fails rather than skips.
#[test]
fn the_alert_rules_pass_promtool() {
    let path = repo_root().join("docs/alerts.yml");
    let output = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|error| {
            panic!("promtool not found ({error}): install the `prometheus` package (.ci/run does)")
        });
    assert!(
        output.status.success(),
        "promtool check rules docs/alerts.yml:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The alert rules behave as their runbooks say: `promtool test rules` over
/// `docs/alerts_test.yml` (a stalled background loop alerts, a ticking one does not).
#[test]
fn the_alert_rules_pass_their_promtool_unit_tests() {
    let path = repo_root().join("docs/alerts_test.yml");
    let output = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|error| {
            panic!("promtool not found ({error}): install the `prometheus` package (.ci/run does)")
        });
    assert!(
        output.status.success(),
        "promtool test rules docs/alerts_test.yml:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The series named in `text`: words starting with one of the server's metric prefixes.
fn series_named(text: &str) -> std::collections::BTreeSet<String> {
    const PREFIXES: [&str; 4] = ["molecule_", "eic_", "workspace_server_", "process_"];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| PREFIXES.iter().any(|prefix| word.starts_with(prefix)))
        // A histogram's series carry suffixes; the documented name is the base.
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

/// Every series the alerts and the dashboard use is one the server exports, as listed in the
/// metrics table of docs/operations.md (`| \`name\` |`), and the dashboard is valid JSON.
#[test]
fn the_alerts_and_the_dashboard_use_only_documented_series() {
    let operations = repo_file("docs/operations.md");
    let dashboard = repo_file("docs/grafana-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    for (file, text) in [
        ("docs/alerts.yml", repo_file("docs/alerts.yml")),
        ("dashboard", dashboard),
    ] {
        let series = series_named(&text);
        assert!(!series.is_empty(), "{file} names no series");
        let unknown: Vec<_> = series
            .iter()
            .filter(|name| !operations.contains(&format!("| `{name}` |")))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses undocumented series {unknown:?}"
        );
    }
}
