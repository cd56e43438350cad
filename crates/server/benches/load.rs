//! Load against the real server (release build) with `wrk`: the metadata routes at 256
//! connections, then `files/config.yaml` spread over 20 workspaces on 20 simulated instances
//! (`eic-sim --profile none`, real sshd). Prints one row per run: requests, non-2xx, socket
//! errors, p50/p99 and the server's peak RSS (VmRSS sampled from /proc every 100 ms).
//! Run with `scripts/bench-load`; `BENCH_SECONDS` (default 15) sets each run's length.

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use eic_sim::SimProcess;
use harness::TestServer;
use harness::panel::{CONFIG_YAML, instance_ids};
use reqwest::StatusCode;
use serde_json::json;

const ADMIN_TOKEN: &str = "bench-admin-token";
/// The rate limiter is per client IP and wrk is one IP: lifted for the benchmark.
const RATE_LIMIT: &str = "1000000000";
const INSTANCES: usize = 20;
/// The endpoint's own limit; 20 instances under the default cap of 16 would queue for tunnels
/// (`BENCH_EIC_MAX_TUNNELS=16` shows that).
const MAX_TUNNELS: &str = "20";

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    let max_tunnels = std::env::var("BENCH_EIC_MAX_TUNNELS").unwrap_or_else(|_| MAX_TUNNELS.into());
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut rows = Vec::new();

    let server = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RATE_LIMIT", RATE_LIMIT)
        .env("RUST_LOG", "warn")
        .start()
        .await;
    let (id, token) = workspace_with_token(&server).await;
    for extra in 0..50 {
        create_workspace(&server, &format!("bench-{extra}"), "claude-code").await;
    }
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let own = format!("Authorization: Bearer {token}");
    let idle_rss = rss_kib(server.pid().expect("running")).expect("the server's VmRSS");
    println!("metadata server idle RSS: {} MiB", mib(idle_rss));
    for (label, path, header) in [
        ("GET /workspaces/{id}", format!("/workspaces/{id}"), None),
        (
            "GET /workspaces/{id}/model",
            format!("/workspaces/{id}/model"),
            Some(own.as_str()),
        ),
        (
            "GET /workspaces (admin, 51 rows)",
            "/workspaces".to_string(),
            Some(admin.as_str()),
        ),
    ] {
        let run = Wrk {
            connections: 256,
            seconds,
            header,
            script: None,
        };
        rows.push((label.to_string(), 256, run.against(&server, &path)));
    }
    drop(server);

    // Files: one simulator with 20 instances, one workspace on each, reads spread over them.
    let instances = instance_ids(INSTANCES);
    let mut args = vec!["--profile", "none"];
    for instance in &instances {
        args.extend(["--instance", instance.as_str()]);
    }
    let sim = tokio::task::block_in_place(|| SimProcess::spawn(&args)).expect("eic-sim starts");
    let info = sim.info().clone();
    let mut builder = TestServer::builder()
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RATE_LIMIT", RATE_LIMIT)
        .env("RUST_LOG", "warn")
        .env("WORKSPACE_EC2_OS_USER", &info.os_user)
        .env("EIC_MAX_TUNNELS", &max_tunnels);
    for (key, value) in info.aws_env() {
        builder = builder.env(key, &value);
    }
    let server = builder.start().await;
    let mut paths = Vec::new();
    for (n, instance) in instances.iter().enumerate() {
        let id = create_workspace(&server, &format!("files-{n}"), "langgraph").await;
        let (status, body) = server
            .request(
                "PUT",
                &format!("/admin/workspaces/{id}/instance"),
                Some(&json!({ "instance_id": instance })),
                Some(ADMIN_TOKEN),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let configs = sim.instance(instance).root.join("opt/configs");
        std::fs::create_dir_all(&configs).expect("the instance root is writable");
        std::fs::write(configs.join("config.yaml"), CONFIG_YAML).expect("seed config.yaml");
        let path = format!("/workspaces/{id}/files/config.yaml");
        // Warm: the measured runs are the pooled path, not 20 setups.
        let (status, body) = server.request("GET", &path, None, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        paths.push(path);
    }
    let script = round_robin_script(&paths);
    for connections in [64, 256] {
        let run = Wrk {
            connections,
            seconds,
            header: Some(&admin),
            script: Some(script.path()),
        };
        let label = format!("GET files/config.yaml ({INSTANCES} instances)");
        rows.push((label, connections, run.against(&server, &paths[0])));
    }
    let status = sim.control().status().await.expect("sim status");
    println!(
        "simulator: {} tunnels opened in all ({} live at the end), {} keys pushed",
        status.tunnels_opened, status.live_tunnels, status.keys_pushed
    );

    println!();
    println!(
        "| route | conns | requests | req/s | non-2xx | socket errors | p50 | p99 | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, connections, r) in &rows {
        println!(
            "| {label} | {connections} | {} | {:.0} | {} | {} | {} | {} | {} MiB |",
            r.requests,
            r.requests_per_second,
            r.non_2xx,
            r.socket_errors,
            r.p50,
            r.p99,
            mib(r.peak_rss_kib)
        );
    }
    println!(
        "({seconds} s per run, wrk -t2, RATE_LIMIT={RATE_LIMIT}, EIC_MAX_TUNNELS={max_tunnels})"
    );
}

async fn create_workspace(server: &TestServer, name: &str, runtime: &str) -> String {
    let body = json!({ "name": name, "runtime": runtime, "tier": 1 });
    let (status, created) = server
        .request("POST", "/workspaces", Some(&body), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("an id").to_string()
}

/// A workspace and a token of its own (so `/model` pays the token check, as agents do).
async fn workspace_with_token(server: &TestServer) -> (String, String) {
    let id = create_workspace(server, "bench", "claude-code").await;
    let path = format!("/admin/workspaces/{id}/test-token");
    let (status, body) = server.request("GET", &path, None, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        id,
        body["auth_token"].as_str().expect("a token").to_string(),
    )
}

/// A wrk Lua script sending GETs to `paths` in turn.
fn round_robin_script(paths: &[String]) -> tempfile::NamedTempFile {
    let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    let script = format!(
        "local paths = {{{}}}\nlocal n = 0\nrequest = function()\n  n = n + 1\n  \
         return wrk.format(\"GET\", paths[(n % #paths) + 1])\nend\n",
        list.join(", ")
    );
    let file = tempfile::Builder::new()
        .suffix(".lua")
        .tempfile()
        .expect("a temp file");
    std::fs::write(file.path(), script).expect("write the wrk script");
    file
}

struct Wrk<'a> {
    connections: usize,
    seconds: u64,
    header: Option<&'a str>,
    script: Option<&'a std::path::Path>,
}

#[derive(Debug, Default)]
struct WrkResult {
    requests: u64,
    requests_per_second: f64,
    non_2xx: u64,
    socket_errors: u64,
    p50: String,
    p99: String,
    peak_rss_kib: u64,
}

impl Wrk<'_> {
    /// Runs wrk against `path` of `server`, sampling the server's RSS meanwhile.
    fn against(&self, server: &TestServer, path: &str) -> WrkResult {
        let mut command = Command::new("wrk");
        command
            .arg("-t2")
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.seconds))
            .args(["--timeout", "10s", "--latency"]);
        if let Some(header) = self.header {
            command.args(["-H", header]);
        }
        if let Some(script) = self.script {
            command.arg("-s").arg(script);
        }
        command.arg(server.url(path));

        let pid = server.pid().expect("running");
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (done, peak) = (done.clone(), peak.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let output = tokio::task::block_in_place(|| command.output())
            .expect("run wrk (apt-get install wrk)");
        done.store(true, Ordering::Relaxed);
        sampler.join().expect("the RSS sampler");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut result = parse_wrk(&text);
        result.peak_rss_kib = peak.load(Ordering::Relaxed);
        assert!(result.peak_rss_kib > 0, "the server's RSS was sampled");
        result
    }
}

fn parse_wrk(text: &str) -> WrkResult {
    let mut result = WrkResult::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(value)) => result.p50 = value.to_string(),
            (Some("99%"), Some(value)) => result.p99 = value.to_string(),
            (Some("Requests/sec:"), Some(value)) => {
                result.requests_per_second = value.parse().expect("wrk's Requests/sec")
            }
            (Some(count), Some("requests")) => {
                result.requests = count.parse().expect("wrk's request count");
            }
            _ => {}
        }
        if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            result.non_2xx = count.trim().parse().expect("wrk's non-2xx count");
        }
        if let Some(errors) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            result.socket_errors = errors
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    result
}

/// VmRSS of a process in KiB; `None` once it is gone (never read as 0).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}
