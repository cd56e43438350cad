//! Harness for black-box tests: starts the real `workspace-server` binary and talks HTTP to it.
//!
//! ```ignore
//! use crate::harness::TestServer;
//! use serde_json::json;
//!
//! // A fresh, empty database on the cluster of DATABASE_URL, a temp data dir, a free port.
//! let server = TestServer::builder().env("ADMIN_TOKEN", "secret").start().await;
//! let (status, body) = server.get("/health").await;
//! assert_eq!(status, 200);
//! assert_eq!(body, json!({"status": "ok"}));
//! let (status, _) = server.request("POST", "/workspaces", Some(&json!({"name": "a"})), Some("secret")).await;
//! // Dropping the server sends SIGTERM (then SIGKILL) and drops its database.
//! ```
//!
//! * The binary is the one Cargo builds for this package's tests and benchmarks
//!   (`CARGO_BIN_EXE_workspace-server`), so `cargo nextest run` always tests the current sources;
//!   the harness never builds anything itself.
//! * The cluster is `DATABASE_URL` (exported by `scripts/test`; else read from the nearest
//!   `.env`, as `#[sqlx::test]` does). Each server gets its own database, created here.
//! * The child's environment is cleared except `PATH`, `HOME`, `LANG`, `RUST_LOG` and
//!   `RUST_BACKTRACE`: a test states every setting it depends on.
//! * Its log (stdout and stderr) goes to a file; [`TestServer::logs`] returns it, and a failed
//!   start panics with it.
//!
//! The benchmarks (`crates/server/benches/`) include this module too.

#[allow(dead_code)] // The benchmarks' agent.
pub mod agent;
pub mod panel;
pub mod sdk_agent;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;

/// How long a server may take to answer `/health` (a first start of the built-in PostgreSQL
/// runs initdb). A bound against hanging, not a speed check.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM → SIGKILL grace on drop.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Per-request bound of the helpers' client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Variables passed through from the test's environment; everything else is explicit.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "RUST_LOG", "RUST_BACKTRACE"];

/// The `workspace-server` binary Cargo built for this package's tests and benchmarks.
pub fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_workspace-server"))
}

/// The repository's root directory (this package is `crates/server`).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/server is two levels below the repository root")
}

/// The cluster URL the tests use: `DATABASE_URL`, else the nearest `.env`'s `DATABASE_URL`.
pub fn cluster_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(current) = dir {
        if let Ok(text) = std::fs::read_to_string(current.join(".env")) {
            let found = text
                .lines()
                .find_map(|line| line.trim().strip_prefix("DATABASE_URL="));
            if let Some(url) = found {
                return url.trim().trim_matches('"').to_string();
            }
        }
        dir = current.parent();
    }
    panic!(
        "DATABASE_URL is not set: run the tests through scripts/test, which starts a throwaway PostgreSQL"
    );
}

/// An empty database of its own on the test cluster, dropped (best effort) on `Drop`.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let name = format!("bb_{}", uuid::Uuid::new_v4().simple());
        let mut url = Url::parse(&cluster_url()).context("DATABASE_URL is not a URL")?;
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        sqlx::Postgres::create_database(&url)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase { url, name })
    }

    /// A small pool on this database, for seeding or checking rows behind the server's back.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop may run inside a runtime: use a thread with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime
                .block_on(sqlx::Postgres::force_drop_database(&url))
                .ok()
        });
        let _ = dropper.join();
    }
}

/// Where the server's database comes from.
#[derive(Debug, Clone)]
enum DatabaseChoice {
    /// A fresh database on the test cluster (the default).
    Fresh,
    /// This URL, as given (may be unreachable on purpose).
    Url(String),
    /// No `DATABASE_URL`: the server's built-in PostgreSQL in its data dir.
    BuiltIn,
}

/// Configures a [`TestServer`] before starting it.
#[derive(Debug)]
pub struct ServerBuilder {
    env: BTreeMap<String, String>,
    database: DatabaseChoice,
    data_dir: Option<PathBuf>,
    args: Vec<String>,
    binary: PathBuf,
}

impl ServerBuilder {
    /// Runs this build instead of [`server_binary`] (a benchmark's A/B with an earlier commit).
    pub fn binary(mut self, binary: &Path) -> Self {
        self.binary = binary.to_path_buf();
        self
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Uses this database URL instead of a fresh database.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database = DatabaseChoice::Url(url.to_string());
        self
    }

    /// Leaves `DATABASE_URL` unset: the server runs its built-in PostgreSQL.
    pub fn built_in_postgres(mut self) -> Self {
        self.database = DatabaseChoice::BuiltIn;
        self
    }

    /// Uses this data dir (kept after the server stops) instead of a temp one.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Extra command-line arguments (e.g. a subcommand).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Starts the server and waits for `/health`; panics with the server's log on failure.
    pub async fn start(self) -> TestServer {
        match self.try_start().await {
            Ok(server) => server,
            Err(error) => panic!("workspace-server did not start: {error:#}"),
        }
    }

    /// Like [`ServerBuilder::start`], returning the error (with the server's log) instead.
    pub async fn try_start(self) -> anyhow::Result<TestServer> {
        let temp = tempfile::Builder::new().prefix("wss-test-").tempdir()?;
        // As root the built-in PostgreSQL runs as `postgres`, which must be able to enter it.
        set_mode(temp.path(), 0o755)?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let database = match &self.database {
            DatabaseChoice::Fresh => Some(TestDatabase::create().await?),
            _ => None,
        };
        let database_url = match (&self.database, &database) {
            (DatabaseChoice::Url(url), _) => Some(url.clone()),
            (_, Some(database)) => Some(database.url.clone()),
            _ => None,
        };
        let mut env = BTreeMap::from([
            ("DATA_DIR".to_string(), data_dir.display().to_string()),
            (
                "CONFIGS_DIR".to_string(),
                temp.path().join("configs").display().to_string(),
            ),
            (
                "WORKSPACES_DIR".to_string(),
                temp.path().join("workspaces").display().to_string(),
            ),
            ("SHUTDOWN_TIMEOUT".to_string(), "5s".to_string()),
        ]);
        if let Some(url) = &database_url {
            env.insert("DATABASE_URL".to_string(), url.clone());
        }
        env.extend(self.env.clone());
        for dir in ["configs", "workspaces"] {
            std::fs::create_dir_all(temp.path().join(dir))?;
        }

        // A port taken between probing and binding makes the child exit: try a few ports.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = temp.path().join(format!("server-{port}.log"));
            let child = spawn(&self.binary, &env, port, &self.args, &log_path)?;
            let mut server = TestServer {
                base_url: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build()?,
                port,
                database_url: database_url.clone(),
                data_dir: data_dir.clone(),
                configs_dir: temp.path().join("configs"),
                workspaces_dir: temp.path().join("workspaces"),
                child: Some(child),
                log_path,
                database: None,
                temp_dir: None,
            };
            match server.wait_healthy().await {
                Ok(()) => {
                    server.database = database;
                    server.temp_dir = Some(temp);
                    return Ok(server);
                }
                Err(error) => {
                    let logs = server.logs();
                    let port_taken = logs.contains("Address already in use");
                    last_error = Some(error.context(format!("server log:\n{logs}")));
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }
}

fn spawn(
    binary: &Path,
    env: &BTreeMap<String, String>,
    port: u16,
    args: &[String],
    log_path: &Path,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path)?;
    let mut command = Command::new(binary);
    command.env_clear();
    for key in INHERITED_ENV {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
        .envs(env)
        .env("PORT", port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    command.spawn().context("spawn workspace-server")
}

/// A running `workspace-server`. Dropping it stops the process (SIGTERM, then SIGKILL) and drops
/// its fresh database.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// A plain client (30 s timeout per request) for requests the helpers do not cover.
    pub client: reqwest::Client,
    pub port: u16,
    /// The server's `DATABASE_URL` (`None` with the built-in PostgreSQL).
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub configs_dir: PathBuf,
    pub workspaces_dir: PathBuf,
    child: Option<Child>,
    log_path: PathBuf,
    database: Option<TestDatabase>,
    temp_dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server with default settings on a fresh database.
    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            env: BTreeMap::new(),
            database: DatabaseChoice::Fresh,
            data_dir: None,
            args: Vec::new(),
            binary: server_binary(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The lines of the log at `level` (`ERROR`, `WARN`, …, as the text format prints it) that
    /// carry `status=<status>`: the error log's lines for that status.
    pub fn log_lines(&self, level: &str, status: u16) -> Vec<String> {
        let level = format!(" {level} ");
        let status = format!("status={status}");
        self.logs()
            .lines()
            .filter(|line| line.contains(&level) && line.contains(&status))
            .map(str::to_owned)
            .collect()
    }

    /// A pool on the server's fresh database (`None` for other database choices).
    pub async fn pool(&self) -> Option<sqlx::PgPool> {
        match &self.database {
            Some(database) => Some(database.pool().await),
            None => None,
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request("GET", path, None, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request("POST", path, Some(body), None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request("PUT", path, Some(body), None).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request("PATCH", path, Some(body), None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request("DELETE", path, None, None).await
    }

    /// Any method, an optional JSON body and an optional bearer token. The answer's body is
    /// parsed as JSON; a body that is not JSON comes back as a JSON string, an empty one as `null`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid HTTP method");
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let status = response.status();
        let text = response
            .text()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: body: {error}"));
        (status, parse_body(&text))
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 10 s). Blocks the calling thread: a
    /// test that serves something the server needs while stopping (a proxy, a fake upstream)
    /// should use `#[tokio::test(flavor = "multi_thread")]`.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGKILL, as a crash would: nothing is cleaned up by the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Polls `/health` until it answers 200; fails early when the process exits.
    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("workspace-server exited with {status} before answering /health");
            }
            // Another test's server may hold the port (taken between our probe for a free port
            // and our child's bind, which a built-in PostgreSQL's initdb delays): its 200 counts
            // only once our child is the one listening.
            if let Ok(response) = probe.get(self.url("/health")).send().await
                && response.status() == StatusCode::OK
                && self
                    .child
                    .as_ref()
                    .is_some_and(|child| listens_on(child.id(), self.port))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.terminate();
                bail!("no 200 from /health within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.terminate();
        // `database` drops after this, once the server no longer holds connections.
    }
}

fn parse_body(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Whether process `pid` holds a TCP socket listening on `port` (IPv4 or IPv6): the inodes of
/// the listening sockets in `/proc/net/tcp{,6}` against the sockets among its open files.
fn listens_on(pid: u32, port: u16) -> bool {
    let local_port = format!(":{port:04X}");
    let listening: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let listens = fields.get(1)?.ends_with(&local_port) && fields.get(3)? == &"0A";
                    let inode = fields.get(9)?;
                    listens.then(|| format!("socket:[{inode}]"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let Ok(files) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    files.filter_map(Result::ok).any(|file| {
        std::fs::read_link(file.path()).is_ok_and(|target| {
            listening
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Runs the server binary with arguments to completion (e.g. `migrate`, `healthcheck`), with
/// the same environment rules as a started server; returns its exit status and output.
pub fn run_command(env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<(ExitStatus, String)> {
    let mut command = Command::new(server_binary());
    command.env_clear();
    for key in INHERITED_ENV {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    let output = command
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status, text))
}
