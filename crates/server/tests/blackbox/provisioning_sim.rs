//! The real binary against `eic-sim --control-plane`: the simulated control plane launches real
//! chrooted sshd instances, so a provisioned workspace's files land on its instance through the
//! EIC path with no further step. Create, restart, pause/resume, console, the control plane down
//! or hanging, a delete mid-provision, and the `/cp/*` and canvas proxies.

use std::time::{Duration, Instant};

use eic_sim::{CpFaultMode, CpStatus, SimControl, SimProcess};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;
use crate::harness::panel::instance_ids;

const ORG: &str = "org-sim";
const ADMIN: &str = "admin-sim";
const CP_SECRET: &str = "cp-shared-secret";

struct Rig {
    sim: SimProcess,
    control: SimControl,
    server: TestServer,
    client: reqwest::Client,
}

impl Rig {
    /// A simulator with `instances` real instances playing the control plane (`extra` more
    /// arguments), and a tenant server wired to it (`env` more settings).
    async fn start(instances: usize, extra: &[&str], env: &[(&str, &str)]) -> Rig {
        let ids = instance_ids(instances);
        let config = format!("--cp-config=MOLECULE_CP_SHARED_SECRET={CP_SECRET}");
        let mut args = vec!["--control-plane", config.as_str()];
        for id in &ids {
            args.extend(["--instance", id.as_str()]);
        }
        args.extend(extra);
        let sim = tokio::task::block_in_place(|| SimProcess::spawn(&args)).expect("eic-sim starts");
        let info = sim.info().clone();
        let cp = info.control_plane_url.clone().expect("a control plane URL");
        let mut builder = TestServer::builder()
            .env("MOLECULE_ORG_ID", ORG)
            .env("ADMIN_TOKEN", ADMIN)
            .env("MOLECULE_CP_URL", &cp)
            .env("CP_UPSTREAM_URL", &cp)
            .env("CANVAS_PROXY_URL", &cp)
            .env("PLATFORM_URL", "http://tenant.example")
            .env("RATE_LIMIT", "1000000")
            .env("WORKSPACE_EC2_OS_USER", &info.os_user);
        for (key, value) in info.aws_env() {
            builder = builder.env(key, &value);
        }
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        let server = builder.start().await;
        let control = SimControl::new(&info.aws_endpoint_url);
        Rig {
            sim,
            control,
            server,
            client: reqwest::Client::new(),
        }
    }

    /// A request as the canvas sends it to the tenant (org header, admin bearer).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), self.server.url(path))
            .header("X-Molecule-Org-Id", ORG)
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, body: Value) -> String {
        let (status, created) = self.call("POST", "/workspaces", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_string()
    }

    async fn cp(&self) -> CpStatus {
        self.control
            .cp_status()
            .await
            .expect("control plane status")
    }

    /// The control plane's calls `METHOD path` (path prefix), in order.
    async fn calls(&self, method: &str, path: &str) -> Vec<eic_sim::CpCall> {
        self.cp()
            .await
            .calls
            .into_iter()
            .filter(|c| c.method == method && c.path.starts_with(path))
            .collect()
    }

    async fn row(&self, id: &str) -> (String, Option<String>, Option<String>) {
        let pool = self.server.pool().await.unwrap();
        sqlx::query_as(
            "SELECT status::text, instance_id, last_sample_error FROM workspaces WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap()
    }

    /// Waits (10 s at most) until the row's status is `status`; the row then.
    async fn until_status(
        &self,
        id: &str,
        status: &str,
    ) -> (String, Option<String>, Option<String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = self.row(id).await;
            if row.0 == status || Instant::now() > deadline {
                assert_eq!(row.0, status, "workspace {id}: {row:?}");
                return row;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the control plane saw `count` calls `METHOD path…`.
    async fn until_calls(&self, method: &str, path: &str, count: usize) -> Vec<eic_sim::CpCall> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls(method, path).await;
            if calls.len() >= count || Instant::now() > deadline {
                assert_eq!(calls.len(), count, "{method} {path}: {calls:?}");
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_provisions_a_real_instance_and_the_lifecycle_drives_it() {
    let rig = Rig::start(3, &[], &[]).await;
    let (status, _) = rig
        .call(
            "POST",
            "/settings/secrets",
            Some(json!({"key": "GLOBAL_API_KEY", "value": "global-plaintext"})),
        )
        .await;
    assert!(status.is_success(), "global secret: {status}");

    // Create → the control plane receives the environment, decrypted → instance_id stored.
    let parent = rig
        .create(
            json!({"name": "parent", "runtime": "langgraph", "model": "minimax/M2",
            "secrets": {"WS_TOKEN": "ws-plaintext"}}),
        )
        .await;
    let (_, instance, _) = rig.until_status(&parent, "provisioning").await;
    let provision = rig.until_calls("POST", "/cp/workspaces/provision", 1).await;
    let sent = &provision[0];
    assert_eq!(sent.headers["authorization"], format!("Bearer {CP_SECRET}"));
    assert_eq!(sent.body["workspace_id"], parent.as_str());
    assert_eq!(sent.body["platform_url"], "http://tenant.example");
    let env = &sent.body["env"];
    assert_eq!(env["MODEL"], "minimax/M2", "{env}");
    assert_eq!(env["GLOBAL_API_KEY"], "global-plaintext", "{env}");
    assert_eq!(env["WS_TOKEN"], "ws-plaintext", "{env}");
    let instance = match instance {
        Some(instance) => instance,
        None => {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let (_, Some(instance), _) = rig.row(&parent).await {
                    break instance;
                }
                assert!(Instant::now() < deadline, "no instance_id stored");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(rig.cp().await.workspaces[&parent].instance_id, instance);
    assert!(rig.cp().await.workspaces[&parent].real);

    // A file written through the server lands on that instance.
    let (status, written) = rig
        .call(
            "PUT",
            &format!("/workspaces/{parent}/files/config.yaml"),
            Some(json!({"content": "name: provisioned\n"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{written}");
    let on_disk = rig
        .sim
        .instance(&instance)
        .root
        .join("opt/configs/config.yaml");
    assert_eq!(
        std::fs::read_to_string(&on_disk).expect("the file is on the instance"),
        "name: provisioned\n"
    );

    // The console shows the control plane's log of the instance.
    let (status, console) = rig
        .call("GET", &format!("/workspaces/{parent}/console"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{console}");
    let output = console["output"].as_str().unwrap();
    assert!(
        output.contains(&format!("provisioning workspace {parent} on {instance}")),
        "{output}"
    );

    // Restart → stop, then provision again.
    rig.control.clear_cp_calls().await.unwrap();
    let (status, answer) = rig
        .call(
            "POST",
            &format!("/workspaces/{parent}/restart"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    rig.until_calls("POST", "/cp/workspaces/provision", 1).await;
    let calls = rig.cp().await.calls;
    let order: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(order, ["DELETE", "POST"], "{calls:?}");
    assert_eq!(
        calls[0].query.as_deref(),
        Some(format!("instance_id={instance}").as_str())
    );

    // Pause cascades to the live child; resume restores both.
    let child = rig
        .create(json!({"name": "child", "runtime": "langgraph", "parent_id": parent}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.row(&child).await.1.is_none() || rig.row(&parent).await.1.is_none() {
        assert!(Instant::now() < deadline, "the child is provisioned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.control.clear_cp_calls().await.unwrap();
    let (status, paused) = rig
        .call("POST", &format!("/workspaces/{parent}/pause"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused_count"], 2, "{paused}");
    rig.until_status(&parent, "paused").await;
    rig.until_status(&child, "paused").await;
    rig.until_calls("DELETE", "/cp/workspaces/", 2).await;
    let cp = rig.cp().await;
    assert_eq!(cp.workspaces[&parent].state, "stopped");
    assert_eq!(cp.workspaces[&child].state, "stopped");

    let (status, resumed) = rig
        .call("POST", &format!("/workspaces/{parent}/resume"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["resumed_count"], 2, "{resumed}");
    rig.until_calls("POST", "/cp/workspaces/provision", 2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cp = rig.cp().await;
        if cp.workspaces[&parent].state == "running" && cp.workspaces[&child].state == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "resume restores both: {cp:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The parent's files are on its instance again.
    let (status, read) = rig
        .call(
            "GET",
            &format!("/workspaces/{parent}/files/config.yaml"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["content"], "name: provisioned\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_down_or_hanging_fails_the_workspace_with_a_reason() {
    let rig = Rig::start(1, &[], &[("PROVISION_TIMEOUT_SECONDS", "2")]).await;

    // Refused: the call fails at once.
    rig.control.cp_fault(CpFaultMode::Refuse).await.unwrap();
    let refused = rig
        .create(json!({"name": "refused", "runtime": "langgraph"}))
        .await;
    let (_, instance, reason) = rig.until_status(&refused, "failed").await;
    assert_eq!(instance, None);
    assert!(reason.is_some_and(|r| !r.is_empty()), "a reason is stored");

    // Hanging: the provision-timeout sweep fails it after PROVISION_TIMEOUT_SECONDS.
    rig.control.cp_fault(CpFaultMode::Hang).await.unwrap();
    let started = Instant::now();
    let hung = rig
        .create(json!({"name": "hung", "runtime": "langgraph"}))
        .await;
    let (_, instance, reason) = rig.until_status(&hung, "failed").await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(instance, None);
    assert!(reason.is_some_and(|r| !r.is_empty()), "a reason is stored");

    // 500: failed too.
    rig.control.cp_fault(CpFaultMode::Error).await.unwrap();
    let errored = rig
        .create(json!({"name": "errored", "runtime": "langgraph"}))
        .await;
    rig.until_status(&errored, "failed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_deleted_mid_provision_leaves_no_running_instance() {
    let rig = Rig::start(1, &["--cp-delay", "1500ms"], &[]).await;
    let id = rig
        .create(json!({"name": "short-lived", "runtime": "langgraph"}))
        .await;
    rig.until_calls("POST", "/cp/workspaces/provision", 1).await;
    let (status, deleted) = rig
        .call("DELETE", &format!("/workspaces/{id}?confirm=true"), None)
        .await;
    assert!(status.is_success(), "{status}: {deleted}");
    // The provision answers after the delay; the server then stops what it got.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let cp = rig.cp().await;
        if cp
            .workspaces
            .get(&id)
            .is_some_and(|machine| machine.state == "stopped")
        {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {cp:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let instance = rig.cp().await.workspaces[&id].instance_id.clone();
    let sim_status = rig.control.status().await.unwrap();
    assert_eq!(sim_status.sshd_running.get(&instance), Some(&false));
}

/// A raw HTTP/1.1 GET (no client-side path normalisation): the status line.
async fn raw_get(server: &TestServer, path: &str) -> String {
    let url = reqwest::Url::parse(&server.url("/")).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: tenant\r\nX-Molecule-Org-Id: {ORG}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tenant_proxies_reach_the_simulated_control_plane_and_canvas() {
    let rig = Rig::start(1, &[], &[]).await;
    let cookie = rig.control.cp_session("user_sim").await.unwrap();

    // /cp/auth/... reaches the control plane with the caller's cookie.
    let answer = rig
        .client
        .get(rig.server.url("/cp/auth/tenant-member?slug=acme"))
        .header("X-Molecule-Org-Id", ORG)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"member": true, "user_id": "user_sim"})
    );
    let answer = rig
        .client
        .get(rig.server.url("/cp/auth/me"))
        .header("X-Molecule-Org-Id", ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);

    // `..` never leaves the allow-list.
    rig.control.clear_cp_calls().await.unwrap();
    assert_eq!(
        raw_get(&rig.server, "/cp/../workspaces").await,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        raw_get(&rig.server, "/cp/auth/../../workspaces").await,
        "HTTP/1.1 404 Not Found"
    );
    assert!(
        rig.cp().await.calls.is_empty(),
        "nothing reached the control plane"
    );

    // An unmatched path reaches the canvas without the caller's credentials.
    let page = rig
        .client
        .get(rig.server.url("/some/canvas/page?x=1"))
        .header("X-Molecule-Org-Id", ORG)
        .header("Cookie", &cookie)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let seen: Value = page.json().await.unwrap();
    assert_eq!(seen["path"], "/some/canvas/page");
    assert_eq!(seen["cookie"], Value::Null);
    assert_eq!(seen["authorization"], Value::Null);

    // The control plane down: a 502 with a JSON message.
    rig.control.cp_fault(CpFaultMode::Refuse).await.unwrap();
    let answer = rig
        .client
        .get(rig.server.url("/cp/auth/me"))
        .header("X-Molecule-Org-Id", ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    assert!(answer.json::<Value>().await.unwrap()["error"].is_string());
}
