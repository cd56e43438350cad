//! Plugins on an EC2 workspace: install, list, reinstall, uninstall and the compatibility check
//! through the EIC backend, against `eic-sim` (real OpenSSH sshd behind a simulated endpoint).

use std::time::Duration;

use crate::common::{app, insert_workspace, send, test_config, test_services};
use crate::files_eic::sim_config;
use crate::plugins::plant;
use axum::http::StatusCode;
use eic_pool::{EicConfig, EicPool};
use eic_sim::SimProcess;
use serde_json::json;
use sqlx::PgPool;

const INSTANCE: &str = "i-0123456789abcdef1";

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plugins_install_and_uninstall_on_an_ec2_workspace(db: PgPool) {
    let sim = SimProcess::spawn(&["--profile", "none", "--instance", INSTANCE])
        .expect("eic-sim starts (cargo build --workspace --all-targets)");
    let info = sim.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.plugins.dir = dir.path().join("registry");
    let registry = config.plugins.dir.clone();
    let files: Vec<(String, String)> = (0..60)
        .map(|i| {
            (
                format!("skills/s{}/part{i}.md", i % 7),
                format!("content {i}"),
            )
        })
        .collect();
    let mut planted: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    planted.push(("plugin.yaml", "version: '3'\nruntimes: [hermes]\n"));
    plant(&registry, "remote", &planted);
    let mut services = test_services(db.clone(), config);
    services.eic = Some(
        EicPool::new(EicConfig {
            operation_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(30),
            ..sim_config(&info)
        })
        .await
        .unwrap(),
    );
    let app = app(api::AppState::new(services));
    let id = insert_workspace(&db, "ec2-plugins", "claude-code", Some(INSTANCE)).await;
    let on_instance = |path: &str| info.instances[INSTANCE].root.join(path);

    let install = send(
        &app,
        "POST",
        &format!("/workspaces/{id}/plugins"),
        Some(&json!({"source": "local://remote"})),
    )
    .await;
    assert_eq!(install.status, StatusCode::OK, "{}", install.text);
    let installed = on_instance("configs/plugins/remote");
    for (path, content) in &files {
        assert_eq!(
            std::fs::read_to_string(installed.join(path)).unwrap(),
            *content
        );
    }
    let list = send(&app, "GET", &format!("/workspaces/{id}/plugins"), None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.json[0]["name"], "remote");
    assert_eq!(list.json[0]["version"], "3");
    assert_eq!(list.json[0]["supported_on_runtime"], false);

    // A reinstall replaces the folder whole.
    std::fs::write(installed.join("stale.md"), "old").unwrap();
    let again = send(
        &app,
        "POST",
        &format!("/workspaces/{id}/plugins"),
        Some(&json!({"source": "remote"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert!(!installed.join("stale.md").exists());
    assert!(installed.join("skills/s0/part0.md").exists());
    let leftovers: Vec<_> = std::fs::read_dir(on_instance("configs/plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, ["remote"]);

    let compat = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/plugins/compatibility?runtime=hermes"),
        None,
    )
    .await;
    assert_eq!(compat.json["all_compatible"], true, "{}", compat.text);

    let removed = send(
        &app,
        "DELETE",
        &format!("/workspaces/{id}/plugins/remote"),
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    assert!(!installed.exists());
    let empty = send(&app, "GET", &format!("/workspaces/{id}/plugins"), None).await;
    assert_eq!(empty.json, json!([]));
}
