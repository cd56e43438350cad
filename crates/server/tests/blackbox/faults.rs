//! Faults under the real binary: the EIC path through `eic-sim` (its `/_sim/` control API and a
//! real sshd) and the database (a private PostgreSQL cluster restarted under load).
//!
//! For every fault: the request in flight gets a 5xx whose message names the failing part (or
//! the 504 of the contract when the budget ran out), later requests recover without restarting
//! the server, no file is left half written, the pool's gauges and the simulator's live tunnels
//! return to zero after the idle timeout, and no request hangs past its timeout (every client
//! call is bounded a little above the server's own budget).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::TestServer;
use crate::harness::panel::instance_ids;
use eic_sim::{FaultsPatch, SimControl, SimProcess};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;

/// The server's budget of one remote file operation (`EIC_OPERATION_TIMEOUT`).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// The client's bound: a little above the server's, so a hang fails the test instead of waiting.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(7);
/// `EIC_IDLE_TIMEOUT`: short, so that leak checks see the pool empty again soon.
const IDLE_TIMEOUT: &str = "1s";
/// How long gauges may take to return to zero (idle timeout plus the reaper's disconnect).
const SETTLE_BOUND: Duration = Duration::from_secs(20);
/// Per-chunk latency that keeps an operation in flight for seconds (each SFTP round trip
/// costs two chunks: about 1.2 s).
const SLOW_CHUNK_MS: u64 = 600;
/// When the fault hits an operation started on a slow tunnel: after its first round trip.
const MID_OPERATION: Duration = Duration::from_millis(1800);

const OLD_CONFIG: &str = "name: faults\nruntime: langgraph\n";

/// One simulator with one instance, a server wired to it, and a workspace attached to it.
struct EicRig {
    sim: SimProcess,
    control: SimControl,
    server: TestServer,
    client: reqwest::Client,
    instance: String,
    workspace: String,
}

impl EicRig {
    async fn start(sim_args: &[&str]) -> EicRig {
        let instance = instance_ids(1).remove(0);
        let mut args = vec!["--profile", "none", "--instance", instance.as_str()];
        args.extend_from_slice(sim_args);
        let sim = tokio::task::block_in_place(|| SimProcess::spawn(&args)).expect("eic-sim starts");
        let info = sim.info().clone();
        let operation_timeout = format!("{}ms", OPERATION_TIMEOUT.as_millis());
        let mut builder = TestServer::builder()
            .env("MOLECULE_ENV", "development")
            .env("RATE_LIMIT", "1000000")
            .env("WORKSPACE_EC2_OS_USER", &info.os_user)
            .env("EIC_OPERATION_TIMEOUT", &operation_timeout)
            .env("EIC_IDLE_TIMEOUT", IDLE_TIMEOUT);
        for (key, value) in info.aws_env() {
            builder = builder.env(key, &value);
        }
        let server = builder.start().await;
        let (status, created) = server
            .post(
                "/workspaces",
                &json!({"name": "faults", "runtime": "langgraph", "tier": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let workspace = created["id"].as_str().expect("an id").to_string();
        let (status, body) = server
            .put(
                &format!("/admin/workspaces/{workspace}/instance"),
                &json!({ "instance_id": instance }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rig = EicRig {
            control: sim.control(),
            sim,
            server,
            client: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .build()
                .unwrap(),
            instance,
            workspace,
        };
        std::fs::create_dir_all(rig.configs_dir()).expect("the instance root is writable");
        std::fs::write(rig.config_path(), OLD_CONFIG).unwrap();
        rig
    }

    /// `/opt/configs` of the instance (runtime `langgraph`) on the simulator's disk.
    fn configs_dir(&self) -> PathBuf {
        self.sim.instance(&self.instance).root.join("opt/configs")
    }

    fn config_path(&self) -> PathBuf {
        self.configs_dir().join("config.yaml")
    }

    fn file_url(&self, name: &str) -> String {
        self.server
            .url(&format!("/workspaces/{}/files/{name}", self.workspace))
    }

    /// `GET files/config.yaml`; a client-side timeout or transport error fails the test.
    async fn read_config(&self) -> (StatusCode, Value) {
        send(self.client.get(self.file_url("config.yaml"))).await
    }

    async fn write_config(&self, content: &str) -> (StatusCode, Value) {
        let body = json!({ "content": content });
        send(self.client.put(self.file_url("config.yaml")).json(&body)).await
    }

    async fn assert_reads(&self, expected: &str) {
        let (status, body) = self.read_config().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["content"], expected);
    }

    async fn faults(&self, patch: FaultsPatch) {
        self.control.set_faults(patch).await.expect("set faults");
    }

    /// Runs `request` in the background, applies `fault` once it is surely in flight, and
    /// returns the request's answer.
    async fn fault_in_flight<F>(&self, request: F, fault: impl AsyncFnOnce()) -> (StatusCode, Value)
    where
        F: Future<Output = (StatusCode, Value)> + Send + 'static,
    {
        let started = Instant::now();
        let in_flight = tokio::spawn(request);
        tokio::time::sleep(MID_OPERATION).await;
        assert!(
            !in_flight.is_finished(),
            "the request finished within {:?}, before the fault; raise SLOW_CHUNK_MS",
            started.elapsed()
        );
        fault().await;
        in_flight.await.expect("the request task")
    }

    /// The pool's connections and tunnels, and the simulator's live tunnels, back to zero.
    async fn assert_no_leak(&self) {
        let deadline = Instant::now() + SETTLE_BOUND;
        loop {
            let metrics = metrics_text(&self.server).await;
            let connections = gauge(&metrics, "eic_connections_live");
            let tunnels = gauge(&metrics, "eic_tunnels_live");
            let sim_tunnels = self
                .control
                .status()
                .await
                .expect("sim status")
                .live_tunnels;
            if connections == Some(0.0) && tunnels == Some(0.0) && sim_tunnels == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still live after {SETTLE_BOUND:?}: eic_connections_live {connections:?}, \
                 eic_tunnels_live {tunnels:?}, simulator tunnels {sim_tunnels}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Names in the configs directory that are not `config.yaml` (temporary siblings).
    fn leftovers(&self) -> Vec<String> {
        list_names(&self.configs_dir())
            .into_iter()
            .filter(|name| name != "config.yaml")
            .collect()
    }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer in time: {e}"));
    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("no body in time: {e}"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn metrics_text(server: &TestServer) -> String {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    response.text().await.expect("metrics body")
}

/// The value of an unlabelled series of the Prometheus text, if present.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// A 502 naming `step` in the contract's words.
fn assert_step_failed(answer: &(StatusCode, Value), step: &str) {
    let expected = format!("workspace host unreachable: {step} failed");
    assert_eq!(
        (answer.0, answer.1["error"].as_str()),
        (StatusCode::BAD_GATEWAY, Some(expected.as_str())),
        "{}",
        answer.1
    );
}

/// The server logged the remote fault once at `warn`, with the route pattern, a request id and
/// the answer's message followed by its cause (the source chain, which the client never sees).
fn assert_logged_remote_fault(server: &TestServer, status: StatusCode, message: &str) {
    let lines = server.log_lines("WARN", status.as_u16());
    let line = lines
        .first()
        .unwrap_or_else(|| panic!("no WARN line for {status}:\n{}", server.logs()));
    for expected in [
        "method=GET",
        r#"route="/workspaces/{id}/files/{*path}""#,
        "request_id=",
        &format!("cause=\"{message}: "),
    ] {
        assert!(line.contains(expected), "{expected:?} missing from {line}");
    }
    eprintln!("logged: {line}");
}

/// A transport fault in the middle of an operation: a 502 naming the broken layer (the SSH
/// transport or its SFTP channel), or the contract's 504 when the break surfaced as silence.
fn assert_transport_fault(answer: &(StatusCode, Value)) {
    let message = answer.1["error"].as_str().unwrap_or_default();
    let named = [
        "workspace host unreachable: tunnel failed",
        "workspace host unreachable: SSH failed",
        "workspace host unreachable: SFTP failed",
    ];
    let ok = match answer.0 {
        StatusCode::BAD_GATEWAY => named.contains(&message),
        StatusCode::GATEWAY_TIMEOUT => message == "workspace host did not answer in time",
        _ => false,
    };
    assert!(
        ok,
        "expected a 502 naming the tunnel/SSH/SFTP or a 504, got {} {}",
        answer.0, answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_dropped_mid_read_fails_the_read_and_the_next_read_recovers() {
    let rig = EicRig::start(&[]).await;
    rig.assert_reads(OLD_CONFIG).await;
    let opened = rig.control.status().await.unwrap().tunnels_opened;

    rig.faults(FaultsPatch {
        chunk_latency_ms: Some(SLOW_CHUNK_MS),
        ..Default::default()
    })
    .await;
    let read = send(rig.client.get(rig.file_url("config.yaml")));
    let control = rig.control.clone();
    let answer = rig
        .fault_in_flight(read, async || {
            assert_eq!(
                control.drop_tunnels().await.unwrap(),
                1,
                "the pooled tunnel was live"
            );
        })
        .await;
    assert_transport_fault(&answer);
    eprintln!("read on a dropped tunnel: {} {}", answer.0, answer.1);

    rig.faults(FaultsPatch {
        chunk_latency_ms: Some(0),
        ..Default::default()
    })
    .await;
    rig.assert_reads(OLD_CONFIG).await;
    let status = rig.control.status().await.unwrap();
    assert_eq!(
        status.tunnels_opened,
        opened + 1,
        "recovery built exactly one new tunnel"
    );
    rig.assert_no_leak().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_dropped_mid_write_leaves_the_old_or_the_new_file_and_no_temporary() {
    let rig = EicRig::start(&[]).await;
    rig.assert_reads(OLD_CONFIG).await;
    // Several SFTP write requests (OpenSSH takes up to ~255 KiB each), so the drop can land
    // between them.
    let new_config = format!("name: faults\n# {}\n", "x".repeat(900 * 1024));

    rig.faults(FaultsPatch {
        chunk_latency_ms: Some(SLOW_CHUNK_MS),
        ..Default::default()
    })
    .await;
    let body = json!({ "content": new_config });
    let write = send(rig.client.put(rig.file_url("config.yaml")).json(&body));
    let control = rig.control.clone();
    let answer = rig
        .fault_in_flight(write, async || {
            assert_eq!(
                control.drop_tunnels().await.unwrap(),
                1,
                "the pooled tunnel was live"
            );
        })
        .await;
    assert_transport_fault(&answer);
    eprintln!("write on a dropped tunnel: {} {}", answer.0, answer.1);
    let on_disk = std::fs::read_to_string(rig.config_path()).unwrap();
    assert!(
        on_disk == OLD_CONFIG || on_disk == new_config,
        "config.yaml is neither the old nor the new content ({} bytes)",
        on_disk.len()
    );

    // Recovery: the next write succeeds and nothing of the broken one is left behind.
    rig.faults(FaultsPatch {
        chunk_latency_ms: Some(0),
        ..Default::default()
    })
    .await;
    let (status, body) = rig.write_config(&new_config).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        std::fs::read_to_string(rig.config_path()).unwrap(),
        new_config
    );
    rig.assert_reads(&new_config).await;
    assert_eq!(
        rig.leftovers(),
        Vec::<String>::new(),
        "temporary files left in /opt/configs"
    );
    rig.assert_no_leak().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_expired_between_push_and_login_fails_at_ssh_and_the_next_setup_recovers() {
    // Keys live 1 s; the tunnel handshake takes 2.5 s, so the key pushed at the start of the
    // setup (concurrently with the handshake) has expired when SSH authenticates with it.
    let rig = EicRig::start(&["--key-ttl", "1s"]).await;
    rig.faults(FaultsPatch {
        handshake_delay_ms: Some(2500),
        ..Default::default()
    })
    .await;
    let answer = rig.read_config().await;
    assert_step_failed(&answer, "SSH");
    assert_eq!(rig.control.status().await.unwrap().keys_pushed, 1);

    rig.faults(FaultsPatch {
        handshake_delay_ms: Some(0),
        ..Default::default()
    })
    .await;
    rig.assert_reads(OLD_CONFIG).await;

    // Keys expiring under a live connection do not matter: it is already authenticated.
    let before = rig.control.status().await.unwrap();
    rig.control.expire_keys().await.unwrap();
    rig.assert_reads(OLD_CONFIG).await;
    assert_eq!(
        rig.control.status().await.unwrap().tunnels_opened,
        before.tunnels_opened
    );
    // A new setup (the tunnel dropped, all keys expired) pushes a fresh key and works.
    rig.control.drop_tunnels().await.unwrap();
    rig.control.expire_keys().await.unwrap();
    rig.assert_reads(OLD_CONFIG).await;
    let after = rig.control.status().await.unwrap();
    assert_eq!(after.tunnels_opened, before.tunnels_opened + 1);
    assert_eq!(after.keys_pushed, before.keys_pushed + 1);
    rig.assert_no_leak().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_refusing_tunnels_gives_502_tunnel_and_recovers_when_it_accepts_again() {
    let rig = EicRig::start(&[]).await;
    rig.control.refuse_tunnels(true).await.unwrap();
    let answer = rig.read_config().await;
    assert_step_failed(&answer, "tunnel");
    assert_logged_remote_fault(
        &rig.server,
        StatusCode::BAD_GATEWAY,
        "workspace host unreachable: tunnel failed",
    );
    // A second call tries again (no cached failure) and fails the same way.
    assert_step_failed(&rig.read_config().await, "tunnel");
    assert_eq!(rig.control.status().await.unwrap().tunnels_rejected, 2);

    rig.control.refuse_tunnels(false).await.unwrap();
    rig.assert_reads(OLD_CONFIG).await;
    // A live connection is not affected by the endpoint refusing new tunnels.
    rig.control.refuse_tunnels(true).await.unwrap();
    rig.assert_reads(OLD_CONFIG).await;
    rig.control.refuse_tunnels(false).await.unwrap();
    rig.assert_no_leak().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_stopped_under_a_live_connection_fails_then_recovers_after_it_restarts() {
    let rig = EicRig::start(&[]).await;
    rig.assert_reads(OLD_CONFIG).await;

    // The instance's sshd goes away while a read is in flight.
    rig.faults(FaultsPatch {
        chunk_latency_ms: Some(SLOW_CHUNK_MS),
        ..Default::default()
    })
    .await;
    let read = send(rig.client.get(rig.file_url("config.yaml")));
    let (control, instance) = (rig.control.clone(), rig.instance.clone());
    let answer = rig
        .fault_in_flight(read, async || control.stop_sshd(&instance).await.unwrap())
        .await;
    assert_transport_fault(&answer);
    rig.faults(FaultsPatch {
        chunk_latency_ms: Some(0),
        ..Default::default()
    })
    .await;

    // While it is down, a new setup fails at the tunnel (the endpoint cannot reach port 22).
    assert_step_failed(&rig.read_config().await, "tunnel");

    rig.control.start_sshd(&rig.instance).await.unwrap();
    rig.assert_reads(OLD_CONFIG).await;
    rig.assert_no_leak().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshake_beyond_the_budget_answers_504_in_time_and_later_calls_recover() {
    let rig = EicRig::start(&[]).await;
    let delay = OPERATION_TIMEOUT + Duration::from_secs(2);
    let delay_ms = delay.as_millis() as u64;
    rig.faults(FaultsPatch {
        handshake_delay_ms: Some(delay_ms),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let answer = rig.read_config().await;
    assert_eq!(
        (answer.0, answer.1["error"].as_str()),
        (
            StatusCode::GATEWAY_TIMEOUT,
            Some("workspace host did not answer in time")
        ),
        "{}",
        answer.1
    );
    eprintln!(
        "504 after {:?} (budget {OPERATION_TIMEOUT:?})",
        started.elapsed()
    );
    assert_logged_remote_fault(
        &rig.server,
        StatusCode::GATEWAY_TIMEOUT,
        "workspace host did not answer in time",
    );

    // Once the handshake is fast again, calls recover (the first may still join the slow setup
    // in flight and time out too; a bounded number of attempts, no restart).
    rig.faults(FaultsPatch {
        handshake_delay_ms: Some(0),
        ..Default::default()
    })
    .await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, body) = rig.read_config().await;
        if status == StatusCode::OK {
            assert_eq!(body["content"], OLD_CONFIG);
            break;
        }
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert!(
            attempts < 3,
            "no recovery after {attempts} attempts: {status} {body}"
        );
    }
    rig.assert_no_leak().await;
}

/// A PostgreSQL cluster of this test alone (so restarting it disturbs no other test), as
/// `scripts/lib/throwaway-pg.sh` makes one; stopped and removed on `Drop`.
struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("wss-faults-pg-")
            .tempdir()
            .unwrap();
        set_mode(dir.path(), 0o755);
        if nix::unistd::geteuid().is_root() {
            chown_to_postgres(dir.path());
        }
        let mut cluster = PrivateCluster {
            dir,
            bin,
            port: port_outside_the_ephemeral_range(),
        };
        let data = cluster.data_dir();
        cluster.pg(&[
            "initdb",
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        // Another process may still bind the port first: then another one.
        for _ in 0..2 {
            if cluster.try_pg_ctl(&["start", "-w"]).is_ok() {
                return cluster;
            }
            cluster.port = port_outside_the_ephemeral_range();
        }
        cluster.pg_ctl(&["start", "-w"]);
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: running sessions are terminated, the cluster comes back.
    fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast", "-w"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        if let Err(failure) = self.try_pg_ctl(args) {
            panic!("{failure}");
        }
    }

    /// `pg_ctl` with `args`; on failure, what it said and the server's log.
    fn try_pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut full = vec!["pg_ctl", "-D", &data, "-l", &log, "-o", &options];
        full.extend_from_slice(args);
        self.try_pg(&full).map_err(|failure| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{failure}\nserver log:\n{log}")
        })
    }

    /// Runs a PostgreSQL program (as `postgres` when we are root: it refuses to run as root).
    fn pg(&self, args: &[&str]) {
        if let Err(failure) = self.try_pg(args) {
            panic!("{failure}");
        }
    }

    fn try_pg(&self, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(args[0]);
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(&args[1..])
            .output()
            .expect("run a PostgreSQL program");
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A free TCP port below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by
/// default). A port from `bind(":0")` is one of that range, and between our check and
/// PostgreSQL's bind (and again across a restart) any test's outgoing connection may be given
/// it as its local port; below the range only an explicit bind can take it.
fn port_outside_the_ephemeral_range() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000;
    let span = ephemeral_start.saturating_sub(low).max(1);
    // From a random start, so that concurrent tests try different ports first.
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u16;
    (0..span)
        .map(|n| low + (start + n) % span)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let program = self.bin.join("pg_ctl");
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// `initdb` and `pg_ctl` from PATH, else the newest `/usr/lib/postgresql/*/bin`.
fn pg_bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        return dir;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").is_file());
    versions.sort_by_key(|dir| {
        let version = dir
            .parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok());
        version.unwrap_or(0)
    });
    versions
        .pop()
        .expect("PostgreSQL server programs (initdb, pg_ctl) are installed")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .arg("postgres:")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postgres: {}", path.display());
}

/// What the load saw: answers by status and message, and transport errors (none allowed).
#[derive(Debug, Default)]
struct LoadTally {
    ok: u64,
    failed: std::collections::BTreeMap<String, u64>,
    transport_errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restarted_under_load_fails_requests_clearly_and_recovers_without_leaks() {
    const MAX_CONNECTIONS: u32 = 8;
    let cluster = PrivateCluster::start();
    let mut database_url = reqwest::Url::parse(&cluster.url()).unwrap();
    database_url.set_path("/faults");
    sqlx::Postgres::create_database(database_url.as_str())
        .await
        .unwrap();
    let server = TestServer::builder()
        .database_url(database_url.as_str())
        .env("ADMIN_TOKEN", "admin-secret")
        .env("RATE_LIMIT", "1000000")
        .env("DB_MAX_CONNECTIONS", &MAX_CONNECTIONS.to_string())
        .env("DB_ACQUIRE_TIMEOUT", "2s")
        .start()
        .await;
    let admin = Some("admin-secret");
    let (status, created) = server
        .request(
            "POST",
            "/workspaces",
            Some(&json!({"name": "db", "tier": 1})),
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, body) = server
        .request(
            "GET",
            &format!("/admin/workspaces/{id}/test-token"),
            None,
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["auth_token"]
        .as_str()
        .expect("a workspace token")
        .to_string();

    // Load: reads (workspace auth) and writes, from 8 clients, until told to stop.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (client, stop, token) = (client.clone(), stop.clone(), token.clone());
        let model_url = server.url(&format!("/workspaces/{id}/model"));
        let patch_url = server.url(&format!("/workspaces/{id}"));
        workers.push(tokio::spawn(async move {
            let mut tally = LoadTally::default();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let request = if (n + worker).is_multiple_of(3) {
                    client
                        .patch(&patch_url)
                        .json(&json!({ "name": format!("db-{worker}-{n}") }))
                } else {
                    client.get(&model_url)
                };
                match request.bearer_auth(&token).send().await {
                    Ok(response) => {
                        let status = response.status();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        if status.is_success() {
                            tally.ok += 1;
                        } else {
                            let key = format!(
                                "{} {}",
                                status.as_u16(),
                                body["error"].as_str().unwrap_or("?")
                            );
                            *tally.failed.entry(key).or_default() += 1;
                        }
                    }
                    Err(error) => tally.transport_errors.push(error.to_string()),
                }
            }
            tally
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| cluster.restart());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = LoadTally::default();
    for worker in workers {
        let tally = worker.await.unwrap();
        total.ok += tally.ok;
        for (key, count) in tally.failed {
            *total.failed.entry(key).or_default() += count;
        }
        total.transport_errors.extend(tally.transport_errors);
    }
    eprintln!("database restart under load: {total:?}");
    assert!(
        total.transport_errors.is_empty(),
        "requests without an answer: {:?}",
        total.transport_errors
    );
    assert!(total.ok > 0);
    for failure in total.failed.keys() {
        assert!(
            failure.starts_with("503 ") && failure.contains("datastore"),
            "a failure that does not name the database: {failure} (all: {:?})",
            total.failed
        );
    }

    // Recovery without a restart of the server: every request succeeds again.
    for n in 0..20 {
        let (status, body) = server
            .request(
                "GET",
                &format!("/workspaces/{id}/model"),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "request {n} after the restart: {body}"
        );
        let (status, body) = server
            .request(
                "PATCH",
                &format!("/workspaces/{id}"),
                Some(&json!({"name": format!("after-{n}")})),
                Some(&token),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "write {n} after the restart: {body}"
        );
    }
    // No leaked connections: the pool stays within its cap, and so does the cluster's view.
    let metrics = metrics_text(&server).await;
    let pooled = gauge(&metrics, "molecule_db_pool_connections").expect("the pool gauge");
    assert!(
        pooled <= f64::from(MAX_CONNECTIONS),
        "pool holds {pooled} connections"
    );
    let sessions = backend_count(&cluster.url(), "faults").await;
    assert!(
        sessions <= i64::from(MAX_CONNECTIONS),
        "{sessions} sessions on the database"
    );
}

async fn backend_count(cluster_url: &str, database: &str) -> i64 {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(cluster_url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut connection)
        .await
        .unwrap()
}
