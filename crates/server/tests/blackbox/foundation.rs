//! The foundation against the real binary: built-in PostgreSQL lifecycle, readiness when the
//! database is down, migrations, concurrent starts, HEAD, metrics and the subcommands.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{TestDatabase, TestServer, run_command};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::json;

/// A data dir the `postgres` user may enter (the built-in cluster runs as it under root).
fn data_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("wss-data-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The postmaster's pid from `<data-dir>/postgres/postmaster.pid`, if the file exists.
fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postgres/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether a process runs. A zombie counts as dead: an orphaned postgres is reparented to PID 1,
/// which in some containers never reaps it.
fn is_alive(pid: i32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        return state != Some("Z");
    }
    // Signal 0 checks existence only; EPERM would still mean "exists".
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

async fn assert_ready(server: &TestServer) {
    let (status, body) = server.get("/ready").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "ready", "checks": {"database": "ok"}})
        )
    );
}

/// What a healthy first start logs at the default level, in order: the auth mode, the data dir
/// being initialised, the database, the schema, the address. Nothing else (no PostgreSQL notices).
const FIRST_START_LINES: &[&str] = &[
    "auth mode",
    "initialising the built-in PostgreSQL (first start)",
    "database: built-in PostgreSQL",
    "database schema is up to date",
    "workspace-server listening",
];

/// The log lines of a start up to `workspace-server listening`, each checked against
/// [`FIRST_START_LINES`] in order.
fn assert_clean_first_start(logs: &str) {
    let start: Vec<&str> = logs
        .lines()
        .take_while(|line| !line.contains("shutting down"))
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(start.len(), FIRST_START_LINES.len(), "{logs}");
    for (line, expected) in start.iter().zip(FIRST_START_LINES) {
        assert!(
            line.contains(" INFO ") && line.contains(expected),
            "expected an INFO line {expected:?}, got {line}\n{logs}"
        );
    }
    assert!(
        !logs.contains("NOTICE") && !logs.contains("skipping"),
        "{logs}"
    );
}

#[tokio::test]
async fn built_in_postgres_initialises_once_is_reused_and_stops_with_the_server() {
    let dir = data_dir();
    let start = || {
        TestServer::builder()
            .built_in_postgres()
            .data_dir(dir.path())
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            .start()
    };

    // First start: initdb into <data-dir>/postgres; its log reads clean.
    let mut first = start().await;
    assert_clean_first_start(&first.logs());
    assert!(
        dir.path().join("postgres/PG_VERSION").is_file(),
        "{}",
        first.logs()
    );
    assert!(
        first.logs().contains("database: built-in PostgreSQL"),
        "{}",
        first.logs()
    );
    assert_ready(&first).await;
    let postmaster = postmaster_pid(dir.path()).expect("postmaster.pid while running");
    assert!(is_alive(postmaster));

    // A second server on the same data dir refuses instead of sharing the cluster.
    let error = TestServer::builder()
        .built_in_postgres()
        .data_dir(dir.path())
        .try_start()
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("another workspace-server is using"),
        "{error:#}"
    );

    // SIGTERM: the server exits cleanly and takes its PostgreSQL with it.
    let status = first.terminate().expect("running");
    assert!(status.success(), "exit {status}: {}", first.logs());
    // Every background task ended before the database closed under it.
    let logs = first.logs();
    let tasks_stopped = logs.find("background tasks stopped");
    let database_closing = logs.find("closing the database");
    assert!(
        tasks_stopped.is_some() && tasks_stopped < database_closing,
        "{logs}"
    );
    assert!(
        !is_alive(postmaster),
        "postgres {postmaster} still running after SIGTERM"
    );

    // Second start reuses the cluster (no initdb) and is ready.
    let started = Instant::now();
    let mut second = start().await;
    assert_ready(&second).await;
    eprintln!(
        "second start with the built-in PostgreSQL: ready after {:?}",
        started.elapsed()
    );
    assert!(!second.logs().contains("initialising"), "{}", second.logs());

    // A crash (SIGKILL) leaves PostgreSQL running; the next start adopts it.
    second.kill();
    let orphan = postmaster_pid(dir.path()).expect("postmaster.pid after the crash");
    assert!(is_alive(orphan));
    let mut third = start().await;
    assert_ready(&third).await;
    assert!(
        third.logs().contains("reusing the built-in PostgreSQL"),
        "{}",
        third.logs()
    );
    assert!(
        third.terminate().expect("running").success(),
        "{}",
        third.logs()
    );
    assert!(
        !is_alive(orphan),
        "postgres {orphan} still running after SIGTERM"
    );
    assert!(postmaster_pid(dir.path()).is_none());
}

#[tokio::test]
async fn stale_postmaster_pid_after_a_crash_of_both_is_recovered() {
    let dir = data_dir();
    let start = || {
        TestServer::builder()
            .built_in_postgres()
            .data_dir(dir.path())
            .start()
    };
    let mut first = start().await;
    let postmaster = postmaster_pid(dir.path()).unwrap();
    // The whole machine "crashes": server and postgres die without cleanup.
    first.kill();
    kill(Pid::from_raw(postmaster), nix::sys::signal::Signal::SIGKILL).unwrap();
    while is_alive(postmaster) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        postmaster_pid(dir.path()).is_some(),
        "the stale pid file stays behind"
    );

    let mut second = start().await;
    assert_ready(&second).await;
    assert!(second.terminate().unwrap().success(), "{}", second.logs());
}

// Multi-threaded: the forwarder must keep running while `terminate` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_keeps_health_up_and_ready_down_until_it_appears() {
    // A port with nothing behind it yet; later a forwarder to the real cluster listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let database = TestDatabase::create().await.unwrap();
    let mut url = reqwest::Url::parse(&database.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(port)).unwrap();

    let server = TestServer::builder()
        .database_url(url.as_str())
        .start()
        .await;
    assert_eq!(
        server.get("/health").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (status, body) = server.get("/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    let reason = body["checks"]["database"]
        .as_str()
        .expect("the database check is named");
    assert_ne!(reason, "ok");
    assert!(
        server.logs().contains("database unreachable at startup"),
        "{}",
        server.logs()
    );

    // The database appears: the background retry migrates and the server becomes ready.
    let forwarder = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let forwarding = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = forwarder.accept().await else {
                return;
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = server.get("/ready").await;
        if status == StatusCode::OK {
            assert_eq!(
                body,
                json!({"status": "ready", "checks": {"database": "ok"}})
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {body}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut server = server;
    assert!(
        server.terminate().expect("running").success(),
        "{}",
        server.logs()
    );
    forwarding.abort();
}

#[tokio::test]
async fn migrate_twice_is_a_no_op() {
    let database = TestDatabase::create().await.unwrap();
    let env = [("DATABASE_URL", database.url.as_str())];
    let (status, output) = run_command(&env, &["migrate"]).unwrap();
    assert!(status.success(), "{output}");
    let pool = database.pool().await;
    let count =
        || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool);
    let applied = count().await.unwrap();
    assert!(applied >= 1);

    let (status, output) = run_command(&env, &["migrate"]).unwrap();
    assert!(status.success(), "{output}");
    assert_eq!(count().await.unwrap(), applied);
    pool.close().await;

    let server = TestServer::builder()
        .database_url(&database.url)
        .start()
        .await;
    assert_ready(&server).await;
}

#[tokio::test]
async fn two_servers_started_at_once_on_one_empty_database_both_come_up() {
    let database = TestDatabase::create().await.unwrap();
    let (a, b) = tokio::join!(
        TestServer::builder().database_url(&database.url).start(),
        TestServer::builder().database_url(&database.url).start(),
    );
    assert_ready(&a).await;
    assert_ready(&b).await;
}

#[tokio::test]
async fn ops_endpoints_answer_get_and_head() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/buildinfo").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["git_sha"].as_str().is_some_and(|sha| !sha.is_empty()),
        "{body}"
    );
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    for path in ["/health", "/ready", "/buildinfo", "/metrics"] {
        let response = server.client.head(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path}");
        assert!(
            response.text().await.unwrap().is_empty(),
            "HEAD {path} has no body"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_show_the_pool() {
    let server = TestServer::start().await;
    server.get("/buildinfo").await;
    let (status, _) = server.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    for series in [
        r#"molecule_http_requests_total{method="GET",path="/buildinfo",status="200"} 1"#,
        r#"molecule_http_requests_total{method="GET",path="unmatched",status="404"} 1"#,
        r#"molecule_http_request_duration_seconds_bucket{method="GET",path="/buildinfo",status="200",le="0.005"}"#,
        "molecule_db_pool_connections ",
        "molecule_db_pool_idle_connections ",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
}

#[tokio::test]
async fn healthcheck_and_version_subcommands() {
    let server = TestServer::start().await;
    let port = server.port.to_string();
    let (status, output) = run_command(&[("PORT", &port)], &["healthcheck"]).unwrap();
    assert!(status.success(), "{output}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, output) = run_command(&[("PORT", &closed.to_string())], &["healthcheck"]).unwrap();
    assert_eq!(status.code(), Some(1), "{output}");

    let (status, output) = run_command(&[], &["version"]).unwrap();
    assert!(status.success());
    assert!(
        output.starts_with(&format!("workspace-server {}", env!("CARGO_PKG_VERSION"))),
        "{output}"
    );
}

#[tokio::test]
async fn sigterm_lets_the_server_exit_cleanly_on_an_external_database() {
    let mut server = TestServer::start().await;
    let status = server.terminate().expect("running");
    assert!(status.success(), "exit {status}: {}", server.logs());
    assert!(server.logs().contains("shutting down"), "{}", server.logs());
}

#[tokio::test]
async fn built_in_postgres_with_a_data_dir_too_long_for_a_socket_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir();
    let long = dir.path().join("x".repeat(100));
    std::fs::create_dir(&long).unwrap();
    std::fs::set_permissions(&long, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = TestServer::builder()
        .built_in_postgres()
        .data_dir(&long)
        .start()
        .await;
    assert_ready(&server).await;
    assert!(
        server
            .logs()
            .contains("using a short socket dir under /tmp"),
        "{}",
        server.logs()
    );
    assert!(
        server.terminate().expect("running").success(),
        "{}",
        server.logs()
    );
}
