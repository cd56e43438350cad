//! Safe defaults and day-2 behaviour of the real binary: refused starts (before the database is
//! touched), the auth mode line, the client address behind a trusted proxy, `RATE_LIMIT=0`, the
//! request id, the dual-stack listener and the shutdown bounded by `SHUTDOWN_TIMEOUT`.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{TestDatabase, TestServer, run_command};

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn migrations_table_exists(database: &TestDatabase) -> bool {
    let pool = database.pool().await;
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    exists
}

#[tokio::test]
async fn a_misconfigured_release_exits_before_touching_the_database() {
    let database = TestDatabase::create().await.unwrap();
    let url = database.url.as_str();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("MOLECULE_ENV", "production"), ("DATABASE_URL", url)],
            "ADMIN_TOKEN is required in production",
        ),
        (
            &[("MOLECULE_ENV", "prod"), ("DATABASE_URL", url)],
            "MOLECULE_ENV=\"prod\" is not one of development, staging, production",
        ),
        (
            &[
                ("MOLECULE_ENV", "production"),
                ("ADMIN_TOKEN", "admin"),
                ("SECRETS_ENCRYPTION_KEY", KEY_B64),
            ],
            "DATABASE_URL is required in production (no built-in PostgreSQL)",
        ),
    ];
    for (env, refusal) in cases {
        for args in [&[][..], &["migrate"][..]] {
            let (status, output) = run_command(env, args).unwrap();
            assert!(!status.success(), "{env:?} {args:?} started:\n{output}");
            assert!(output.contains(refusal), "{env:?} {args:?}:\n{output}");
        }
    }
    assert!(
        !migrations_table_exists(&database).await,
        "a refused start migrated the database"
    );
}

#[tokio::test]
async fn every_start_logs_its_auth_mode_and_what_weakens_it() {
    let server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("RATE_LIMIT", "0")
        .start()
        .await;
    let line = server
        .logs()
        .lines()
        .find(|line| line.contains("auth mode"))
        .map(str::to_owned)
        .expect("an auth mode line");
    assert!(line.contains("open development"), "{line}");
    assert!(line.contains("rate limit off (RATE_LIMIT=0)"), "{line}");
    assert!(line.contains("secrets stored unencrypted"), "{line}");
}

/// `n` GETs of an unknown path (it passes the limiter like any route) as `client`, through a
/// proxy on 127.0.0.1 that names it in `X-Forwarded-For`; the statuses.
async fn statuses_as(server: &TestServer, client: &str, n: usize) -> Vec<StatusCode> {
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..n {
        let response = http
            .get(server.url("/no-such-route"))
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    statuses
}

#[tokio::test]
async fn the_limiter_counts_the_forwarded_client_only_behind_a_trusted_proxy() {
    let limited = [
        StatusCode::NOT_FOUND,
        StatusCode::NOT_FOUND,
        StatusCode::TOO_MANY_REQUESTS,
    ];
    let behind_proxy = TestServer::builder()
        .env("RATE_LIMIT", "2")
        .env("TRUSTED_PROXIES", "127.0.0.0/8, ::1")
        .start()
        .await;
    assert_eq!(statuses_as(&behind_proxy, "203.0.113.1", 3).await, limited);
    // Another client behind the same proxy has its own window.
    assert_eq!(
        statuses_as(&behind_proxy, "203.0.113.2", 1).await,
        [StatusCode::NOT_FOUND]
    );

    // Without TRUSTED_PROXIES the header is ignored: everyone is the peer, 127.0.0.1.
    let direct = TestServer::builder().env("RATE_LIMIT", "2").start().await;
    assert_eq!(statuses_as(&direct, "203.0.113.1", 2).await, &limited[..2]);
    assert_eq!(
        statuses_as(&direct, "203.0.113.2", 1).await,
        [StatusCode::TOO_MANY_REQUESTS]
    );

    // RATE_LIMIT=0 turns the limiter off instead of refusing everything.
    let off = TestServer::builder().env("RATE_LIMIT", "0").start().await;
    let statuses = statuses_as(&off, "203.0.113.1", 5).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_request_id_is_returned_and_logged_with_the_client_address() {
    let server = TestServer::builder()
        .env("RUST_LOG", "info,api=debug")
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .start()
        .await;
    let http = reqwest::Client::new();
    let response = http
        .get(server.url("/no-such-route"))
        .header("x-request-id", "edge-7f3a")
        .header("x-forwarded-for", "198.51.100.23")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "edge-7f3a");
    let generated = http.get(server.url("/health")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let logs = server.logs();
    let line = logs
        .lines()
        .find(|line| line.contains("edge-7f3a"))
        .unwrap_or_else(|| panic!("no line with the request id:\n{logs}"));
    assert!(line.contains("198.51.100.23"), "{line}");
}

#[tokio::test]
async fn the_server_listens_on_ipv6_and_ipv4_unless_told_otherwise() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        panic!("this machine has no IPv6 loopback; the dual-stack test cannot run");
    }
    let server = TestServer::start().await;
    let port = reqwest::Url::parse(&server.url("/"))
        .unwrap()
        .port()
        .unwrap();
    for host in ["127.0.0.1", "[::1]"] {
        let response = reqwest::get(format!("http://{host}:{port}/health"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    drop(server);

    let ipv4_only = TestServer::builder()
        .env("LISTEN_ADDR", "0.0.0.0")
        .start()
        .await;
    let port = reqwest::Url::parse(&ipv4_only.url("/"))
        .unwrap()
        .port()
        .unwrap();
    assert!(
        reqwest::get(format!("http://[::1]:{port}/health"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sigterm_ends_the_process_within_the_shutdown_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let mut server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("SHUTDOWN_TIMEOUT", "3s")
        .start()
        .await;
    // A request that never finishes: its body is announced but never sent, so the drain would
    // wait for it forever without the timeout.
    let address = reqwest::Url::parse(&server.url("/")).unwrap();
    let mut stalled =
        std::net::TcpStream::connect((address.host_str().unwrap(), address.port().unwrap()))
            .unwrap();
    write!(
        stalled,
        "POST /workspaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    let status = server.terminate().expect("the server was running");
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "the process exits on its own, cleanly: {status}"
    );
    assert!(
        took < TIMEOUT + Duration::from_secs(2),
        "SIGTERM took {took:?} with SHUTDOWN_TIMEOUT={TIMEOUT:?}"
    );
    assert!(server.logs().contains("cut off"), "{}", server.logs());
}

#[tokio::test]
async fn metrics_carry_the_build_and_the_process_and_every_series_is_documented() {
    let server = TestServer::start().await;
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let build = text
        .lines()
        .find(|line| line.starts_with("workspace_server_build_info{"))
        .unwrap_or_else(|| panic!("no build info:\n{text}"));
    assert!(
        build.contains("version=\"") && build.contains("git_sha=\"") && build.ends_with(" 1"),
        "{build}"
    );
    for series in [
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "workspace_server_uptime_seconds ",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(series)),
            "{series}missing:\n{text}"
        );
    }
    // Each background loop's age, once it ticked (the scheduler ticks at start).
    let loop_age = "workspace_server_background_loop_age_seconds{loop=\"scheduler\"} ";
    let text = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let text = reqwest::get(server.url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text.lines().any(|line| line.starts_with(loop_age)) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {loop_age}series"));
    let operations =
        std::fs::read_to_string(crate::harness::repo_root().join("docs/operations.md")).unwrap();
    let undocumented: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .filter(|name| !operations.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "add to the metrics table of docs/operations.md: {undocumented:?}"
    );
}

/// SIGTERM with 32 open EIC connections (32 instances on eic-sim, each with a file read through
/// the server): the process exits cleanly within `SHUTDOWN_TIMEOUT`, and every tunnel is closed.
/// That the disconnects run side by side (1 s each would take 1 s in all, not 32) is shown by the
/// pool's own test, `close_disconnects_thirty_two_connections_concurrently`: a real SSH disconnect
/// does not wait for the remote, so no simulator delay can slow one down here.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_thirty_two_eic_connections_ends_within_the_shutdown_timeout() {
    use crate::harness::panel::{PanelRig, instance_ids};
    const CONNECTIONS: usize = 32;
    const TIMEOUT: Duration = Duration::from_secs(5);
    let instances = instance_ids(CONNECTIONS);
    let mut rig = PanelRig::start_with(
        "none",
        &instances,
        &[
            ("EIC_MAX_TUNNELS", "32"),
            ("EIC_POOL_MAX_INSTANCES", "32"),
            ("SHUTDOWN_TIMEOUT", "5s"),
        ],
    )
    .await;
    let mut ids = Vec::new();
    for (n, instance) in instances.iter().enumerate() {
        ids.push(rig.attached_workspace(&format!("eic-{n}"), instance).await);
    }
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("/workspaces/{id}/files/config.yaml"))
        .collect();
    let reads = paths.iter().map(|path| rig.server.get(path));
    for (status, body) in futures_util::future::join_all(reads).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let control = rig.sim.control();
    assert_eq!(
        control.status().await.unwrap().live_tunnels,
        CONNECTIONS as u64,
        "one open connection per instance"
    );
    // Slow tunnels while closing, as a congested endpoint would be.
    let patch = eic_sim::FaultsPatch {
        chunk_latency_ms: Some(1000),
        ..eic_sim::FaultsPatch::default()
    };
    control.set_faults(patch).await.unwrap();

    let signalled = Instant::now();
    let status = tokio::task::block_in_place(|| rig.server.terminate()).expect("running");
    let took = signalled.elapsed();
    eprintln!("SIGTERM with {CONNECTIONS} EIC connections: exited after {took:?}");
    assert!(status.success(), "a clean exit: {status}");
    assert!(
        took < TIMEOUT,
        "SIGTERM with {CONNECTIONS} EIC connections took {took:?}; SHUTDOWN_TIMEOUT={TIMEOUT:?}"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if control.status().await.unwrap().live_tunnels == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "every tunnel is closed after the exit");
}
