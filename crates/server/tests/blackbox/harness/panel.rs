//! The canvas's config panel against the real server and `eic-sim`: shared by the black-box test
//! (`tests/blackbox/panel.rs`) and the benchmark (`benches/panel.rs`) of `crates/server`.
//!
//! The panel's load, as ConfigTab does it: `GET /workspaces/{id}`, `/model` and `/provider`
//! concurrently with `GET /workspaces/{id}/files/config.yaml`, then the Files tab's list.

use std::time::{Duration, Instant};

use eic_sim::SimProcess;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::TestServer;

/// The `config.yaml` every panel workspace is seeded with.
pub const CONFIG_YAML: &str =
    "name: panel\nruntime: langgraph\nruntime_config:\n  model: anthropic:claude-sonnet\n";

/// `count` simulated instance ids (`i-` + 17 hex digits).
pub fn instance_ids(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("i-{:017x}", 0x0123_4567_89ab_cde0_u64 + i as u64))
        .collect()
}

/// A simulator with `instances` and a server wired to it (dev mode: no tokens needed).
#[derive(Debug)]
pub struct PanelRig {
    pub sim: SimProcess,
    pub server: TestServer,
}

impl PanelRig {
    pub async fn start(profile: &str, instances: &[String]) -> PanelRig {
        Self::start_with(profile, instances, &[]).await
    }

    /// [`PanelRig::start`] with more settings for the server.
    pub async fn start_with(profile: &str, instances: &[String], env: &[(&str, &str)]) -> PanelRig {
        // An endpoint with room for every instance (AWS allows 20 per endpoint).
        let max_tunnels = instances.len().max(20).to_string();
        let mut args = vec!["--profile", profile, "--max-tunnels", &max_tunnels];
        for instance in instances {
            args.extend(["--instance", instance.as_str()]);
        }
        let sim = tokio::task::block_in_place(|| SimProcess::spawn(&args)).expect("eic-sim starts");
        let info = sim.info().clone();
        let mut builder = TestServer::builder()
            .env("MOLECULE_ENV", "development")
            .env("RATE_LIMIT", "1000000")
            .env("WORKSPACE_EC2_OS_USER", &info.os_user);
        for (key, value) in info.aws_env() {
            builder = builder.env(key, &value);
        }
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        let server = builder.start().await;
        PanelRig { sim, server }
    }

    /// Creates a workspace, attaches it to `instance`, and seeds its `config.yaml` on the
    /// instance (runtime `langgraph`: `/opt/configs`). Returns the workspace id.
    pub async fn attached_workspace(&self, name: &str, instance: &str) -> String {
        let (status, created) = self
            .server
            .post(
                "/workspaces",
                &json!({"name": name, "runtime": "langgraph", "tier": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {name}: {created}");
        let id = created["id"].as_str().expect("an id").to_string();
        let (status, attached) = self
            .server
            .put(
                &format!("/admin/workspaces/{id}/instance"),
                &json!({ "instance_id": instance }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "attach {instance}: {attached}");
        let configs = self.sim.instance(instance).root.join("opt/configs");
        std::fs::create_dir_all(&configs).expect("the instance root is writable");
        std::fs::write(configs.join("config.yaml"), CONFIG_YAML).expect("seed config.yaml");
        id
    }
}

/// What one panel load saw, and how long it took.
#[derive(Debug)]
pub struct PanelLoad {
    /// From the first request to the last answer of the four concurrent GETs.
    pub first_paint: Duration,
    /// Including the file list that follows.
    pub total: Duration,
    pub runtime: String,
    pub config_yaml: String,
    pub files: Vec<String>,
}

async fn get_json(server: &TestServer, path: String) -> Value {
    let path = path.as_str();
    let response = server
        .client
        .get(server.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

/// One panel load of workspace `id`, asserting every answer.
pub async fn load_panel(server: &TestServer, id: &str) -> PanelLoad {
    let started = Instant::now();
    let (workspace, model, provider, config) = tokio::join!(
        get_json(server, format!("/workspaces/{id}")),
        get_json(server, format!("/workspaces/{id}/model")),
        get_json(server, format!("/workspaces/{id}/provider")),
        get_json(server, format!("/workspaces/{id}/files/config.yaml")),
    );
    let first_paint = started.elapsed();
    let files = get_json(
        server,
        format!("/workspaces/{id}/files?root=/configs&depth=1"),
    )
    .await;
    let total = started.elapsed();
    assert!(model.get("model").is_some(), "{model}");
    assert!(provider.get("provider").is_some(), "{provider}");
    PanelLoad {
        first_paint,
        total,
        runtime: workspace["runtime"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        config_yaml: config["content"].as_str().unwrap_or_default().to_string(),
        files: files
            .as_array()
            .expect("a list")
            .iter()
            .map(|entry| entry["path"].as_str().unwrap_or_default().to_string())
            .collect(),
    }
}

/// The `q`-quantile (0.0..=1.0) of `samples`, nearest rank.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    assert!(!sorted.is_empty(), "a quantile of no samples");
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with one decimal, for reports.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
