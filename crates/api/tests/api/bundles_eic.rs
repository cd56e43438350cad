//! Bundles on the EIC backend: an EC2 workspace's bundle is read from the instance itself
//! (through `eic-sim`: real sshd, simulated EIC), never from a local template; its import
//! lands in fresh local workspaces.

use std::time::Duration;

use crate::bundles::read_file;
use crate::common::{app, insert_workspace, send, test_config, test_services};
use crate::files_eic::sim_config;
use axum::http::StatusCode;
use eic_pool::{EicConfig, EicPool};
use eic_sim::SimProcess;
use serde_json::json;
use sqlx::PgPool;

const INSTANCE: &str = "i-0b0d1e5000000000b";

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_reads_the_instance_and_import_lands_locally(db: PgPool) {
    let sim = SimProcess::spawn(&["--profile", "none", "--instance", INSTANCE])
        .expect("eic-sim starts (cargo build --workspace --all-targets)");
    let info = sim.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let mut services = test_services(db.clone(), test_config(dir.path()));
    let timeout = Duration::from_secs(30);
    services.eic = Some(
        EicPool::new(EicConfig {
            operation_timeout: timeout,
            step_timeout: timeout,
            ..sim_config(&info)
        })
        .await
        .unwrap(),
    );
    let app = app(api::AppState::new(services));

    let root = insert_workspace(&db, "On EC2", "claude-code", Some(INSTANCE)).await;
    let child: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO workspaces (name, parent_id, runtime) VALUES ('Local kid', $1, 'langgraph') RETURNING id",
    )
    .bind(root)
    .fetch_one(&db)
    .await
    .unwrap();
    // The instance's own files (claude-code keeps them in /configs).
    let on_instance = info.instances[INSTANCE].root.join("configs");
    std::fs::create_dir_all(on_instance.join("skills/deploy")).unwrap();
    std::fs::write(on_instance.join("system-prompt.md"), "from the instance").unwrap();
    std::fs::write(
        on_instance.join("config.yaml"),
        "runtime: claude-code\nmodel: opus\n",
    )
    .unwrap();
    std::fs::write(on_instance.join("skills/deploy/SKILL.md"), "Deploys.\n").unwrap();
    // A template folder that the original would have exported instead: never read.
    std::fs::create_dir_all(dir.path().join("configs/decoy")).unwrap();
    std::fs::write(
        dir.path().join("configs/decoy/config.yaml"),
        "name: decoy\n",
    )
    .unwrap();

    let r = send(&app, "GET", &format!("/bundles/export/{root}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["system_prompt"], "from the instance");
    assert_eq!(r.json["model"], "opus");
    assert_eq!(r.json["skills"][0]["files"]["SKILL.md"], "Deploys.\n");
    assert!(!r.text.contains("decoy"));
    assert_eq!(r.json["sub_workspaces"][0]["id"], child.to_string());

    let imported = send(&app, "POST", "/bundles/import", Some(&r.json)).await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);
    assert_eq!(imported.json["name"], "On EC2 (copy)");
    let id = imported.json["workspace_id"].as_str().unwrap();
    assert_eq!(
        read_file(&app, id, "system-prompt.md").await.unwrap(),
        "from the instance"
    );
    assert_eq!(
        read_file(&app, id, "skills/deploy/SKILL.md").await.unwrap(),
        "Deploys.\n"
    );
    let on_disk = dir
        .path()
        .join("workspaces")
        .join(id)
        .join("configs/config.yaml");
    assert_eq!(
        std::fs::read_to_string(on_disk).unwrap(),
        "runtime: claude-code\nmodel: opus\n"
    );

    // Missing files and folders on the instance are absent from the bundle, not errors.
    std::fs::remove_dir_all(on_instance.join("skills")).unwrap();
    std::fs::remove_file(on_instance.join("system-prompt.md")).unwrap();
    let r = send(&app, "GET", &format!("/bundles/export/{root}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.json["system_prompt"].as_str(), r.json["skills"].clone()),
        (Some(""), json!([]))
    );

    // An instance that cannot be reached: the export fails loudly (no silent partial bundle).
    let control = eic_sim::SimControl::new(&info.aws_endpoint_url);
    control.refuse_tunnels(true).await.unwrap();
    control.drop_tunnels().await.unwrap();
    let r = send(&app, "GET", &format!("/bundles/export/{root}"), None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"error": "workspace host unreachable: tunnel failed"})
    );
}
