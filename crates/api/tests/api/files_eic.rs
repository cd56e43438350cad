//! The files API on the EIC backend: the real router and `EicPool`, against `eic-sim` (real
//! OpenSSH sshd behind a simulated EIC endpoint) and real PostgreSQL. The pool is pointed at
//! the simulator through explicit settings taken from its ready line.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{Reply, app, insert_workspace, send, test_config, test_services, test_state};
use axum::http::StatusCode;
use eic_pool::{AwsSettings, EicConfig, EicPool};
use eic_sim::{FaultsPatch, SimControl, SimInfo, SimProcess};
use serde_json::{Value, json};
use sqlx::PgPool;

const INSTANCE: &str = "i-0123456789abcdef0";

/// Default pool settings pointed at the simulator of `info`.
pub fn sim_config(info: &SimInfo) -> EicConfig {
    EicConfig {
        os_user: info.os_user.clone(),
        aws: Some(AwsSettings {
            endpoint_url: Some(info.aws_endpoint_url.clone()),
            region: info.region.clone(),
            access_key_id: info.access_key_id.clone(),
            secret_access_key: info.secret_access_key.clone().into(),
        }),
        ..EicConfig::default()
    }
}

async fn pool(info: &SimInfo, operation_timeout: Duration) -> EicPool {
    EicPool::new(EicConfig {
        operation_timeout,
        step_timeout: operation_timeout,
        ..sim_config(info)
    })
    .await
    .expect("the pool builds from the simulator's settings")
}

struct Eic {
    app: axum::Router,
    db: PgPool,
    info: SimInfo,
    _dir: tempfile::TempDir,
    /// Stopped (with its sshd) when the test ends.
    _sim: SimProcess,
}

impl Eic {
    /// A simulator with one instance (profile `none`) and the router with a pool pointed at it.
    async fn start(db: PgPool, operation_timeout: Duration) -> Eic {
        let sim = SimProcess::spawn(&["--profile", "none", "--instance", INSTANCE])
            .expect("eic-sim starts (cargo build --workspace --all-targets)");
        let info = sim.info().clone();
        let dir = tempfile::tempdir().unwrap();
        let mut services = test_services(db.clone(), test_config(dir.path()));
        services.eic = Some(pool(&info, operation_timeout).await);
        let state = api::AppState::new(services);
        Eic {
            app: app(state),
            db,
            info,
            _dir: dir,
            _sim: sim,
        }
    }

    async fn workspace(&self, runtime: &str, instance: &str) -> String {
        insert_workspace(
            &self.db,
            &format!("ws {runtime} {}", uuid::Uuid::new_v4()),
            runtime,
            Some(instance),
        )
        .await
        .to_string()
    }

    fn on_instance(&self, path: &str) -> PathBuf {
        self.info.instances[INSTANCE].root.join(path)
    }

    fn control(&self) -> SimControl {
        SimControl::new(&self.info.aws_endpoint_url)
    }

    async fn call(&self, method: &str, id: &str, rest: &str, body: Option<Value>) -> Reply {
        send(
            &self.app,
            method,
            &format!("/workspaces/{id}/files{rest}"),
            body.as_ref(),
        )
        .await
    }
}

fn paths(reply: &Reply) -> Vec<String> {
    let list = reply
        .json
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", reply.text));
    list.iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn error(reply: &Reply) -> &str {
    reply.json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {}: {}", reply.status, reply.text))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn files_tab_over_eic(db: PgPool) {
    let eic = Eic::start(db, Duration::from_secs(30)).await;
    // claude-code keeps its config in /configs on the instance.
    let id = eic.workspace("claude-code", INSTANCE).await;

    let empty = eic.call("GET", &id, "?root=/configs&depth=1", None).await;
    assert_eq!((empty.status, empty.text.as_str()), (StatusCode::OK, "[]"));

    let saved = eic
        .call(
            "PUT",
            &id,
            "/config.yaml",
            Some(json!({"content": "name: eic\n"})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    assert_eq!(saved.text, r#"{"path":"config.yaml","status":"saved"}"#);
    assert_eq!(
        std::fs::read_to_string(eic.on_instance("configs/config.yaml")).unwrap(),
        "name: eic\n"
    );

    // Upload several files (one by one, as the tab does), then list, expand and read.
    for (path, content) in [
        ("skills/search/SKILL.md", "# s"),
        ("skills/notes.md", "n"),
        ("prompt.md", "p"),
    ] {
        let r = eic
            .call(
                "PUT",
                &id,
                &format!("/{path}"),
                Some(json!({ "content": content })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let mut root = paths(&eic.call("GET", &id, "?root=/configs&depth=1", None).await);
    root.sort();
    assert_eq!(root, ["config.yaml", "prompt.md", "skills"]);
    let mut expanded = paths(
        &eic.call("GET", &id, "?root=/configs&path=skills&depth=1", None)
            .await,
    );
    expanded.sort();
    assert_eq!(expanded, ["notes.md", "search"]);
    let read = eic
        .call("GET", &id, "/config.yaml?root=/configs", None)
        .await;
    assert_eq!(
        read.text,
        r#"{"content":"name: eic\n","path":"config.yaml","size":10}"#
    );

    // Delete one (the original answered 400 to every real DELETE), then again: still success.
    let deleted = eic.call("DELETE", &id, "/prompt.md", None).await;
    assert_eq!(deleted.text, r#"{"path":"prompt.md","status":"deleted"}"#);
    assert!(!eic.on_instance("configs/prompt.md").exists());
    assert_eq!(
        eic.call("DELETE", &id, "/prompt.md", None).await.status,
        StatusCode::OK
    );
    let mut after = paths(&eic.call("GET", &id, "?depth=1", None).await);
    after.sort();
    assert_eq!(after, ["config.yaml", "skills"]);

    let missing = eic.call("GET", &id, "/missing.yaml", None).await;
    assert_eq!(
        (missing.status, error(&missing)),
        (StatusCode::NOT_FOUND, "file not found on workspace")
    );
    assert_eq!(
        eic.call("GET", &id, "?path=missing&depth=2", None)
            .await
            .text,
        "[]"
    );

    // Replace many: the answer names the EC2 source; everything lands in /configs.
    let replaced = eic
        .call(
            "PUT",
            &id,
            "",
            Some(json!({"files": {"a.md": "a", "deep/b.md": "b"}})),
        )
        .await;
    assert_eq!(
        replaced.text,
        format!(r#"{{"files":2,"source":"ec2-ssh","status":"replaced","workspace":"{id}"}}"#)
    );
    assert_eq!(
        std::fs::read_to_string(eic.on_instance("configs/deep/b.md")).unwrap(),
        "b"
    );
    let bad = eic
        .call(
            "PUT",
            &id,
            "",
            Some(json!({"files": {"ok.md": "x", "../../etc/x": "x"}})),
        )
        .await;
    assert_eq!(
        (bad.status, error(&bad)),
        (StatusCode::BAD_REQUEST, "invalid request body")
    );
    assert!(!eic.on_instance("configs/ok.md").exists());

    // The literal roots.
    for root in ["/home", "/workspace", "/plugins"] {
        let r = eic
            .call(
                "PUT",
                &id,
                &format!("/x.txt?root={root}"),
                Some(json!({"content": root})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            std::fs::read_to_string(eic.on_instance(&format!("{}/x.txt", &root[1..]))).unwrap(),
            root
        );
        assert_eq!(
            eic.call("GET", &id, &format!("/x.txt?root={root}"), None)
                .await
                .json["content"],
            root
        );
    }

    // 413 both ways: an oversized body, and a file grown past the limit on the instance.
    let over = eic
        .call(
            "PUT",
            &id,
            "/big.txt",
            Some(json!({"content": "a".repeat(1024 * 1024 + 1)})),
        )
        .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    std::fs::write(
        eic.on_instance("configs/grown.txt"),
        vec![b'x'; 1024 * 1024 + 1],
    )
    .unwrap();
    assert_eq!(
        eic.call("GET", &id, "/grown.txt", None).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Validation answers before any remote work.
    let root = eic.call("GET", &id, "?root=/etc", None).await;
    assert_eq!(
        error(&root),
        "root must be one of: /configs, /workspace, /home, /plugins"
    );
    assert_eq!(
        error(&eic.call("GET", &id, "?depth=9", None).await),
        "depth must be 1-5"
    );
    assert_eq!(
        error(&eic.call("GET", &id, "/%2e%2e/etc/passwd", None).await),
        "invalid path"
    );
    assert_eq!(
        error(&eic.call("DELETE", &id, "//etc/passwd", None).await),
        "invalid path"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn runtimes_map_the_configs_root(db: PgPool) {
    let eic = Eic::start(db, Duration::from_secs(30)).await;
    for (runtime, directory) in [
        ("claude-code", "configs"),
        ("Hermes", "home/ubuntu/.hermes"),
        ("langgraph", "opt/configs"),
        ("EXTERNAL", "opt/configs"),
        ("something-else", "configs"),
    ] {
        let id = eic.workspace(runtime, INSTANCE).await;
        let name = format!("{}.yaml", runtime.to_lowercase());
        let r = eic
            .call(
                "PUT",
                &id,
                &format!("/{name}"),
                Some(json!({"content": runtime})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{runtime}: {}", r.text);
        assert_eq!(
            std::fs::read_to_string(eic.on_instance(&format!("{directory}/{name}"))).unwrap(),
            runtime,
            "{runtime}"
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn remote_faults_answer_clear_statuses_and_recover(db: PgPool) {
    let eic = Eic::start(db, Duration::from_secs(2)).await;
    let control = eic.control();
    let id = eic.workspace("claude-code", INSTANCE).await;

    // An instance the endpoint does not know: 409, not 500.
    let stranger = eic.workspace("claude-code", "i-0fedcba9876543210").await;
    let r = eic.call("GET", &stranger, "/config.yaml", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        error(&r).starts_with("workspace instance is unavailable: "),
        "{}",
        r.text
    );

    // The endpoint refuses tunnels: 502 naming the tunnel; allowed again: works.
    control.refuse_tunnels(true).await.unwrap();
    let r = eic.call("GET", &id, "/config.yaml", None).await;
    assert_eq!(
        (r.status, error(&r)),
        (
            StatusCode::BAD_GATEWAY,
            "workspace host unreachable: tunnel failed"
        )
    );
    control.refuse_tunnels(false).await.unwrap();
    assert_eq!(
        eic.call("GET", &id, "/config.yaml", None).await.status,
        StatusCode::NOT_FOUND
    );

    // A handshake slower than the budget: 504 with the contract's message; then it recovers.
    control.drop_tunnels().await.unwrap();
    control
        .set_faults(FaultsPatch {
            handshake_delay_ms: Some(5_000),
            ..FaultsPatch::default()
        })
        .await
        .unwrap();
    let r = eic.call("GET", &id, "?depth=1", None).await;
    assert_eq!(
        (r.status, error(&r)),
        (
            StatusCode::GATEWAY_TIMEOUT,
            "workspace host did not answer in time"
        )
    );
    control
        .set_faults(FaultsPatch {
            handshake_delay_ms: Some(0),
            ..FaultsPatch::default()
        })
        .await
        .unwrap();
    let recovered = eic.call("GET", &id, "?depth=1", None).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.text);

    // sshd stopped: a 5xx that names a step of the remote path (never a 500), then recovery.
    control.stop_sshd(INSTANCE).await.unwrap();
    control.drop_tunnels().await.unwrap();
    let r = eic.call("GET", &id, "/config.yaml", None).await;
    assert!(
        r.status == StatusCode::BAD_GATEWAY || r.status == StatusCode::GATEWAY_TIMEOUT,
        "{}: {}",
        r.status,
        r.text
    );
    assert!(error(&r).starts_with("workspace host"), "{}", r.text);
    control.start_sshd(INSTANCE).await.unwrap();
    let back = eic
        .call("PUT", &id, "/after.txt", Some(json!({"content": "ok"})))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
}

/// A tunnel dropped while its connection sat idle in the pool (the endpoint's limit, a NAT):
/// the next call meets a connection that looks alive but is not, and must still answer from a
/// fresh one, whether or not the pool noticed the drop first.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_tunnel_dropped_while_idle_is_replaced_without_a_fault(db: PgPool) {
    let eic = Eic::start(db, Duration::from_secs(10)).await;
    let control = eic.control();
    let id = eic.workspace("claude-code", INSTANCE).await;
    std::fs::create_dir_all(eic.on_instance("configs")).unwrap();
    std::fs::write(eic.on_instance("configs/config.yaml"), "name: idle\n").unwrap();
    let first = eic.call("GET", &id, "/config.yaml", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    for round in 0..10 {
        assert_eq!(control.drop_tunnels().await.unwrap(), 1, "round {round}");
        let r = eic.call("GET", &id, "/config.yaml", None).await;
        assert_eq!(r.status, StatusCode::OK, "round {round}: {}", r.text);
        assert_eq!(r.json["content"], "name: idle\n");
        let put = json!({"content": format!("round {round}\n")});
        assert_eq!(control.drop_tunnels().await.unwrap(), 1, "round {round}");
        let w = eic.call("PUT", &id, "/note.txt", Some(put)).await;
        assert_eq!(w.status, StatusCode::OK, "round {round}: {}", w.text);
    }
    assert_eq!(
        std::fs::read_to_string(eic.on_instance("configs/note.txt")).unwrap(),
        "round 9\n"
    );
    assert_eq!(control.status().await.unwrap().tunnels_opened, 21);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_instance_without_a_pool_is_409(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let id = insert_workspace(&db, "remote", "langgraph", Some(INSTANCE)).await;
    let r = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/files/config.yaml"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        error(&r),
        "workspace instance is unavailable: EIC is not configured on this server"
    );
}

/// The SFTP server runs with root's rights (`sudo -n sftp-server` on a host): files root made
/// on the instance can be changed; what the instance refuses even to root answers 403 naming it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn root_made_files_are_changed_and_a_real_refusal_is_named(db: PgPool) {
    let eic = Eic::start(db, Duration::from_secs(30)).await;
    let id = eic.workspace("claude-code", INSTANCE).await;
    // The test runs as root, like an instance's provisioning: a root-owned directory and file.
    let dir = eic.on_instance("configs/root-made");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.md"), "root").unwrap();
    let deleted = eic.call("DELETE", &id, "/root-made/a.md", None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert!(!dir.join("a.md").exists());
    let written = eic
        .call("PUT", &id, "/root-made/b.md", Some(json!({"content": "b"})))
        .await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.text);

    // An immutable file: even root cannot remove it.
    let locked = dir.join("locked.md");
    std::fs::write(&locked, "x").unwrap();
    let chattr = |flag: &str| {
        let status = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&locked)
            .status();
        assert!(status.expect("chattr runs (package e2fsprogs)").success());
    };
    chattr("+i");
    let refused = eic.call("DELETE", &id, "/root-made/locked.md", None).await;
    chattr("-i");
    assert_eq!(
        (refused.status, error(&refused)),
        (
            StatusCode::FORBIDDEN,
            "permission denied on the workspace host"
        )
    );
}
