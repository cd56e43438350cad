//! Plugin install on an EC2 workspace against `eic-sim --profile aws`, through the real server
//! (release build): a 200-file, 2 MiB plugin from the registry, cold (first contact with the
//! instance) and warm (median of 10 reinstalls, each replacing the whole folder), plus the
//! uninstall. Run with `scripts/bench-plugins`. Goal: warm install ≤ 1.5 s.

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use eic_sim::SimProcess;
use harness::TestServer;
use harness::panel::{instance_ids, ms, quantile};
use reqwest::StatusCode;
use serde_json::json;

const FILES: usize = 200;
const TOTAL_BYTES: usize = 2 * 1024 * 1024;
const WARM_RUNS: usize = 10;

#[tokio::main]
async fn main() {
    run().await;
}

/// A registry with one plugin of `FILES` files over 10 folders, `TOTAL_BYTES` in all.
fn registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    let plugin = dir.path().join("bench-plugin");
    let size = TOTAL_BYTES / FILES;
    for i in 0..FILES {
        let file = plugin.join(format!("skills/s{}/file{i}.md", i % 10));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let content: Vec<u8> = (0..size).map(|b| b"abcdefghij\n"[(b + i) % 11]).collect();
        std::fs::write(file, content).unwrap();
    }
    std::fs::write(plugin.join("plugin.yaml"), "version: '1'\n").unwrap();
    dir
}

async fn install(server: &TestServer, id: &str) -> Duration {
    let started = Instant::now();
    let (status, body) = server
        .post(
            &format!("/workspaces/{id}/plugins"),
            &json!({"source": "local://bench-plugin"}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "install: {body}");
    took
}

async fn run() {
    let instance = instance_ids(1).remove(0);
    let sim = tokio::task::block_in_place(|| {
        SimProcess::spawn(&["--profile", "aws", "--instance", &instance])
    })
    .expect("eic-sim starts");
    let info = sim.info().clone();
    let plugins = registry();
    let mut builder = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("RATE_LIMIT", "1000000")
        .env("WORKSPACE_EC2_OS_USER", &info.os_user)
        .env("PLUGINS_DIR", plugins.path().to_str().unwrap());
    for (key, value) in info.aws_env() {
        builder = builder.env(key, &value);
    }
    let server = builder.start().await;
    let (status, created) = server
        .post(
            "/workspaces",
            &json!({"name": "bench-plugins", "runtime": "langgraph", "tier": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, attached) = server
        .put(
            &format!("/admin/workspaces/{id}/instance"),
            &json!({ "instance_id": instance }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attached}");
    std::fs::create_dir_all(sim.instance(&instance).root.join("opt/configs")).unwrap();

    let cold = install(&server, &id).await;
    let mut warm = Vec::with_capacity(WARM_RUNS);
    for _ in 0..WARM_RUNS {
        warm.push(install(&server, &id).await);
    }
    let installed = sim
        .instance(&instance)
        .root
        .join("opt/configs/plugins/bench-plugin/skills");
    let count: usize = std::fs::read_dir(&installed)
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(count, FILES, "every file landed");
    let started = Instant::now();
    let (status, body) = server
        .delete(&format!("/workspaces/{id}/plugins/bench-plugin"))
        .await;
    let uninstall = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");

    println!(
        "plugin install, {FILES} files, {} KiB, EC2 workspace, eic-sim --profile aws",
        TOTAL_BYTES / 1024
    );
    println!(
        "  cold install (first contact with the instance): {}",
        ms(cold)
    );
    println!(
        "  warm install (replaces the whole folder): median {} (min {}, max {}, {WARM_RUNS} runs)",
        ms(quantile(&warm, 0.5)),
        ms(quantile(&warm, 0.0)),
        ms(quantile(&warm, 1.0))
    );
    println!("  uninstall (warm): {}", ms(uninstall));
    let goal = Duration::from_millis(1500);
    let median = quantile(&warm, 0.5);
    println!(
        "  goal warm ≤ {}: {}",
        ms(goal),
        if median <= goal { "met" } else { "NOT met" }
    );
}
