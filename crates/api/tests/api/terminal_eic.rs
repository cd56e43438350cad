//! The web terminal on the pooled EIC connection: the real router served on a loopback port,
//! a real WebSocket client, `EicPool` against `eic-sim` (a real OpenSSH sshd running a real
//! shell for PTY sessions) and real PostgreSQL.

use std::time::Duration;

use crate::common::{insert_workspace, test_config, test_services};
use crate::files_eic::sim_config;
use eic_pool::{EicConfig, EicPool};
use eic_sim::{SimControl, SimInfo, SimProcess};
use futures_util::{SinkExt, StreamExt};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

const INSTANCE: &str = "i-0123456789abcdef0";
/// How long a test waits for something that should come at once (never a timing assertion).
const PATIENCE: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Terminal {
    base: String,
    db: PgPool,
    pool: EicPool,
    info: SimInfo,
    _dir: tempfile::TempDir,
    _sim: SimProcess,
}

impl Terminal {
    async fn start(db: PgPool, tune: impl FnOnce(&mut EicConfig)) -> Terminal {
        let sim = SimProcess::spawn(&["--profile", "none", "--instance", INSTANCE])
            .expect("eic-sim starts (cargo build -p eic-sim)");
        let info = sim.info().clone();
        let mut config = sim_config(&info);
        tune(&mut config);
        let pool = EicPool::new(config).await.expect("the pool builds");
        let dir = tempfile::tempdir().unwrap();
        let mut services = test_services(db.clone(), test_config(dir.path()));
        services.eic = Some(pool.clone());
        let state = api::AppState::new(services);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Terminal {
            base: format!("127.0.0.1:{}", address.port()),
            db,
            pool,
            info,
            _dir: dir,
            _sim: sim,
        }
    }

    async fn workspace(&self, instance: Option<&str>) -> Uuid {
        let name = format!("term {}", Uuid::new_v4());
        insert_workspace(&self.db, &name, "claude-code", instance).await
    }

    async fn connect(
        &self,
        id: Uuid,
        headers: &[(&'static str, String)],
    ) -> Result<Socket, WsError> {
        let url = format!("ws://{}/workspaces/{id}/terminal", self.base);
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    async fn open(&self, id: Uuid) -> Socket {
        self.connect(id, &[]).await.expect("the terminal opens")
    }

    fn control(&self) -> SimControl {
        SimControl::new(&self.info.aws_endpoint_url)
    }
}

/// Reads output until it contains `wanted`; returns all of it.
async fn read_until(socket: &mut Socket, wanted: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = socket.next().await {
            match message {
                Message::Binary(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Message::Text(text) => seen.push_str(&text),
                Message::Close(frame) => seen.push_str(&format!("<close {frame:?}>")),
                _ => {}
            }
            if seen.contains(wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never saw {wanted:?}; got {seen:?}"
    );
    seen
}

/// The close frame that ends the socket (output before it is skipped).
async fn close_frame(socket: &mut Socket) -> (CloseCode, String) {
    tokio::time::timeout(PATIENCE, async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                let frame = frame.expect("a close frame with a code");
                return (frame.code, frame.reason.to_string());
            }
        }
        panic!("the socket ended without a close frame")
    })
    .await
    .expect("a close frame in time")
}

async fn type_line(socket: &mut Socket, line: &str) {
    socket
        .send(Message::Text(format!("{line}\n").into()))
        .await
        .unwrap();
}

/// Shell processes running inside the instance's chroot.
fn shells_on_instance(term: &Terminal) -> usize {
    let chroot = &term.info.instances[INSTANCE].root;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let dir = entry.path();
            let is_shell =
                std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "sh");
            is_shell && std::fs::read_link(dir.join("root")).is_ok_and(|root| &root == chroot)
        })
        .count()
}

/// Waits until no shell, lease or queued operation is left in the pool, no shell process on the
/// instance, and the simulator relays exactly the pool's tunnels.
async fn gauges_back_to_baseline(term: &Terminal) {
    let pool = &term.pool;
    let control = term.control();
    let settled = tokio::time::timeout(PATIENCE, async {
        loop {
            let status = pool.status();
            let live_tunnels = control.status().await.unwrap().live_tunnels;
            if pool.open_shells() == 0
                && status.leases == 0
                && status.queued == 0
                && live_tunnels == status.tunnels as u64
                && shells_on_instance(term) == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "shells {} / processes {} / status {:?}",
        pool.open_shells(),
        shells_on_instance(term),
        pool.status()
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_typed_command_echoes_its_output_and_a_resize_reaches_the_pty(db: PgPool) {
    let term = Terminal::start(db, |_| {}).await;
    let id = term.workspace(Some(INSTANCE)).await;
    let mut socket = term.open(id).await;
    type_line(&mut socket, "echo h''i").await;
    read_until(&mut socket, "hi\r\n").await;

    let resize = r#"{"type":"resize","cols":132,"rows":40}"#;
    socket.send(Message::Text(resize.into())).await.unwrap();
    // A resize message is not typed into the shell: the next command runs as typed.
    type_line(&mut socket, "echo after-resize-$((40+2))").await;
    read_until(&mut socket, "after-resize-42").await;

    type_line(&mut socket, "exit").await;
    assert_eq!(close_frame(&mut socket).await.0, CloseCode::Normal);
    gauges_back_to_baseline(&term).await;
    assert_eq!(
        term.pool.status().setups,
        1,
        "the shell used the pooled connection"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn file_reads_stay_served_while_five_shells_are_open(db: PgPool) {
    let term = Terminal::start(db, |config| config.max_ops_per_connection = 2).await;
    let id = term.workspace(Some(INSTANCE)).await;
    std::fs::write(
        term.info.instances[INSTANCE].root.join("configs/a.txt"),
        "A",
    )
    .unwrap();
    let mut shells = Vec::new();
    for n in 0..5 {
        let mut socket = term.open(id).await;
        type_line(&mut socket, &format!("echo shell-$((10+{n}))")).await;
        read_until(&mut socket, &format!("shell-{}", 10 + n)).await;
        shells.push(socket);
    }
    assert_eq!(term.pool.open_shells(), 5);
    assert_eq!(shells_on_instance(&term), 5);
    let reads = (0..20).map(|_| term.pool.read_file(INSTANCE, "/configs/a.txt", 1024));
    let results = futures_util::future::join_all(reads).await;
    for result in results {
        assert_eq!(result.expect("a read served beside the shells"), b"A");
    }
    for socket in &mut shells {
        socket.close(None).await.unwrap();
    }
    drop(shells);
    gauges_back_to_baseline(&term).await;
    assert_eq!(term.pool.status().connections, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_shell_near_the_tunnel_deadline_gets_a_fresh_connection_and_a_warning(db: PgPool) {
    // Every connection is "near its deadline" one second after it is built, and the warning
    // comes at once.
    let term = Terminal::start(db, |config| {
        config.shell_min_remaining = config.max_tunnel_duration() - Duration::from_secs(1);
        config.shell_end_warning = Duration::from_secs(24 * 3600);
    })
    .await;
    let id = term.workspace(Some(INSTANCE)).await;
    std::fs::write(
        term.info.instances[INSTANCE].root.join("configs/a.txt"),
        "A",
    )
    .unwrap();
    term.pool
        .read_file(INSTANCE, "/configs/a.txt", 1024)
        .await
        .unwrap();
    assert_eq!(term.pool.status().setups, 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let mut socket = term.open(id).await;
    read_until(&mut socket, "This terminal session will end").await;
    type_line(&mut socket, "echo fresh-$((1+1))").await;
    read_until(&mut socket, "fresh-2").await;
    assert_eq!(
        term.pool.status().setups,
        2,
        "the shell got a fresh connection"
    );
    // File operations move to the fresh connection too; the old one closes.
    term.pool
        .read_file(INSTANCE, "/configs/a.txt", 1024)
        .await
        .unwrap();
    assert_eq!(term.pool.status().setups, 2);
    socket.close(None).await.unwrap();
    gauges_back_to_baseline(&term).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_dropped_tunnel_closes_the_shell_with_a_frame_naming_the_step(db: PgPool) {
    let term = Terminal::start(db, |_| {}).await;
    let id = term.workspace(Some(INSTANCE)).await;
    let mut socket = term.open(id).await;
    type_line(&mut socket, "echo up-$((3*3))").await;
    read_until(&mut socket, "up-9").await;

    assert!(term.control().drop_tunnels().await.unwrap() >= 1);
    let (code, reason) = close_frame(&mut socket).await;
    assert_eq!(code, CloseCode::Error);
    assert_eq!(reason, "terminal closed: tunnel failed");
    gauges_back_to_baseline(&term).await;

    // The next open builds a new connection.
    let mut socket = term.open(id).await;
    type_line(&mut socket, "echo again-$((5+5))").await;
    read_until(&mut socket, "again-10").await;
    assert_eq!(term.pool.status().setups, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn refusals_come_before_the_upgrade(db: PgPool) {
    let term = Terminal::start(db, |_| {}).await;
    let id = term.workspace(Some(INSTANCE)).await;
    let status = |result: Result<Socket, WsError>| match result {
        Err(WsError::Http(response)) => {
            let body =
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => panic!("the terminal opened"),
    };

    let no_instance = term.workspace(None).await;
    assert_eq!(
        status(term.connect(no_instance, &[]).await),
        (
            409,
            r#"{"error":"workspace has no instance: the terminal needs one"}"#.into()
        )
    );

    // A foreign Origin: CORS refuses it before routing (403, empty body), as the original.
    let foreign = [("origin", "https://evil.example".to_string())];
    assert_eq!(status(term.connect(id, &foreign).await).0, 403);

    // A peer outside the hierarchy: a child of another root workspace.
    let parent = term.workspace(None).await;
    let outsider = term.workspace(None).await;
    sqlx::query("UPDATE workspaces SET parent_id = $1 WHERE id = $2")
        .bind(parent)
        .bind(outsider)
        .execute(&term.db)
        .await
        .unwrap();
    let claim = [("x-workspace-id", outsider.to_string())];
    assert_eq!(
        status(term.connect(id, &claim).await),
        (
            403,
            r#"{"error":"not authorized to access this workspace's terminal"}"#.into()
        )
    );
    // A sibling (both at the root) may.
    let sibling = term.workspace(None).await;
    let claim = [("x-workspace-id", sibling.to_string())];
    let mut socket = term
        .connect(id, &claim)
        .await
        .expect("a sibling opens the terminal");
    type_line(&mut socket, "echo sib-$((2+2))").await;
    read_until(&mut socket, "sib-4").await;
    assert_eq!(term.pool.status().setups, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn diagnose_reports_every_step_of_a_working_instance(db: PgPool) {
    let term = Terminal::start(db, |_| {}).await;
    let id = term.workspace(Some(INSTANCE)).await;
    let url = format!("http://{}/workspaces/{id}/terminal/diagnose", term.base);
    let report: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["instance_id"], INSTANCE);
    let names: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "discovery",
            "send-ssh-public-key",
            "open-tunnel",
            "ssh",
            "shell"
        ]
    );
    assert!(report.get("first_failure").is_none());

    term.control().refuse_tunnels(true).await.unwrap();
    let report: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_failure"], "open-tunnel", "{report}");
    assert_eq!(report["steps"].as_array().unwrap().len(), 3);
    assert_eq!(
        term.pool.status().connections,
        0,
        "the diagnosis pools nothing"
    );
}
