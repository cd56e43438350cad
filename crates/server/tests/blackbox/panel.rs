//! The config panel of a workspace whose files live on an EC2 instance, end to end: the real
//! `workspace-server` binary, `eic-sim --profile aws` (AWS-like latencies) and a real sshd.
//! Timings are printed, never asserted (the benchmark `scripts/bench-panel` reports them).

use crate::harness::panel::{CONFIG_YAML, PanelRig, instance_ids, load_panel, ms};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_panel_loads_from_the_instance_cold_then_warm() {
    let instances = instance_ids(1);
    let rig = PanelRig::start("aws", &instances).await;
    let id = rig.attached_workspace("panel", &instances[0]).await;

    let cold = load_panel(&rig.server, &id).await;
    assert_eq!(cold.config_yaml, CONFIG_YAML);
    assert_eq!(cold.runtime, "langgraph");
    assert_eq!(cold.files, ["config.yaml"]);
    let warm = load_panel(&rig.server, &id).await;
    assert_eq!(warm.config_yaml, CONFIG_YAML);
    println!(
        "panel load (profile aws): cold first paint {} total {}; warm first paint {} total {}",
        ms(cold.first_paint),
        ms(cold.total),
        ms(warm.first_paint),
        ms(warm.total)
    );

    // A save from the panel lands on the instance's disk, and reads back.
    let saved = "name: panel\nruntime: langgraph\n# saved\n";
    let (status, body) = rig
        .server
        .put(
            &format!("/workspaces/{id}/files/config.yaml"),
            &json!({ "content": saved }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let on_disk = rig
        .sim
        .instance(&instances[0])
        .root
        .join("opt/configs/config.yaml");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), saved);
    assert_eq!(load_panel(&rig.server, &id).await.config_yaml, saved);

    // The Files tab on the instance: upload, list, delete (DELETE works, unlike the original).
    let (status, body) = rig
        .server
        .put(
            &format!("/workspaces/{id}/files"),
            &json!({"files": {"notes/a.md": "a", "b.md": "b"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "ec2-ssh");
    let (status, body) = rig
        .server
        .delete(&format!("/workspaces/{id}/files/b.md"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = rig
        .server
        .get(&format!("/workspaces/{id}/files?depth=2"))
        .await;
    let paths: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"notes/a.md") && !paths.contains(&"b.md"),
        "{paths:?}"
    );
    let (status, body) = rig
        .server
        .get(&format!("/workspaces/{id}/files/missing.txt"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("file not found on workspace"))
    );
}
