//! Provisioning through a control plane and the lifecycle routes, against a fake control plane
//! (an HTTP server in the test playing the control plane's four calls) and real PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{app, assert_error, insert_workspace, send, test_config, test_services};

/// One call the fake control plane received.
#[derive(Debug, Clone)]
struct Call {
    what: &'static str,
    workspace_id: String,
    instance_id: String,
    body: Value,
    bearer: String,
}

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    /// The provision answer's status (201 when 0).
    provision_status: Arc<Mutex<u16>>,
    /// Delay before the provision answer.
    provision_delay: Arc<Mutex<Duration>>,
    /// Provision calls in flight now, and at most.
    in_flight: Arc<Mutex<(usize, usize)>>,
}

impl Fake {
    fn calls(&self, what: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|c| c.what == what).cloned().collect()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn provision(
    State(fake): State<Fake>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let delay = *fake.provision_delay.lock().unwrap();
    {
        let mut in_flight = fake.in_flight.lock().unwrap();
        in_flight.0 += 1;
        in_flight.1 = in_flight.1.max(in_flight.0);
    }
    tokio::time::sleep(delay).await;
    fake.in_flight.lock().unwrap().0 -= 1;
    let workspace_id = body["workspace_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let instance_id = format!("i-{}", &workspace_id[..8]);
    fake.record(Call {
        what: "provision",
        workspace_id,
        instance_id: instance_id.clone(),
        body,
        bearer: bearer(&headers),
    });
    match *fake.provision_status.lock().unwrap() {
        0 => (
            StatusCode::CREATED,
            axum::Json(json!({ "instance_id": instance_id, "state": "pending" })),
        ),
        code => (
            StatusCode::from_u16(code).unwrap(),
            axum::Json(json!({ "error": "capacity" })),
        ),
    }
}

#[derive(serde::Deserialize)]
struct InstanceQuery {
    instance_id: String,
}

async fn stop(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    Query(query): Query<InstanceQuery>,
    headers: HeaderMap,
) -> StatusCode {
    fake.record(Call {
        what: "stop",
        workspace_id: id,
        instance_id: query.instance_id,
        body: Value::Null,
        bearer: bearer(&headers),
    });
    StatusCode::OK
}

async fn status(Query(query): Query<InstanceQuery>) -> axum::Json<Value> {
    let state = if query.instance_id.starts_with("i-dead") {
        "stopped"
    } else {
        "running"
    };
    axum::Json(json!({ "state": state }))
}

async fn console(Path(id): Path<String>) -> (StatusCode, axum::Json<Value>) {
    if id.starts_with('0') {
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({})));
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "output": format!("boot log of {id}") })),
    )
}

/// Starts the fake control plane; its base URL.
async fn start_fake(fake: Fake) -> String {
    let router = Router::new()
        .route("/cp/workspaces/provision", post(provision))
        .route("/cp/workspaces/{id}", delete(stop))
        .route("/cp/workspaces/{id}/status", get(status))
        .route("/cp/admin/workspaces/{id}/console", get(console))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A router whose provisioner is the fake control plane (or none with `None`).
async fn router(db: &PgPool, fake: Option<&Fake>) -> (Router, api::AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    if let Some(fake) = fake {
        config.provisioner = api::provisioner::ProvisionerConfig {
            org_id: Some("org-1".into()),
            base_url: Some(start_fake(fake.clone()).await),
            shared_secret: Some("shared".to_string().into()),
            platform_url: "http://tenant:8080".into(),
            ..Default::default()
        };
    }
    let state = api::AppState::new(test_services(db.clone(), config));
    (app(state.clone()), state, dir)
}

/// Waits (bounded) until `query` returns a row equal to `expected`.
async fn eventually(db: &PgPool, query: &'static str, id: Uuid, expected: &str) {
    let mut last = String::new();
    for _ in 0..200 {
        last = sqlx::query_scalar::<_, Option<String>>(query)
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap()
            .unwrap_or_default();
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{query}: {last:?}, expected {expected:?}");
}

const STATUS: &str = "SELECT status::text FROM workspaces WHERE id = $1";
const INSTANCE: &str = "SELECT instance_id FROM workspaces WHERE id = $1";

async fn events(db: &PgPool, id: Uuid, event: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT payload FROM structure_events WHERE workspace_id = $1 AND event_type = $2 ORDER BY created_at",
    )
    .bind(id)
    .bind(event)
    .fetch_all(db)
    .await
    .unwrap()
}

async fn create(app: &Router, body: Value) -> Uuid {
    let reply = send(app, "POST", "/workspaces", Some(&body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json["id"].as_str().unwrap().parse().unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_sends_the_environment_and_stores_the_instance(db: PgPool) {
    let fake = Fake::default();
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let reply = send(
        &app,
        "PUT",
        "/settings/secrets",
        Some(&json!({"key": "OPENAI_KEY", "value": "sk-global"})),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text);

    let id = create(
        &app,
        json!({"name": "Research Lead", "role": "lead", "model": "minimax/MiniMax-M2.7"}),
    )
    .await;
    eventually(&db, INSTANCE, id, &format!("i-{}", &id.to_string()[..8])).await;

    let provisions = fake.calls("provision");
    assert_eq!(provisions.len(), 1);
    let body = &provisions[0].body;
    assert_eq!(provisions[0].bearer, "Bearer shared");
    assert_eq!(body["org_id"], "org-1");
    assert_eq!(body["platform_url"], "http://tenant:8080");
    assert_eq!(body["workspace_id"], id.to_string());
    assert_eq!(body["env"]["OPENAI_KEY"], "sk-global");
    assert_eq!(body["env"]["MOLECULE_AGENT_ROLE"], "lead");
    assert_eq!(body["env"]["MODEL"], "minimax/MiniMax-M2.7");
    assert_eq!(body["env"]["LLM_PROVIDER"], "minimax");
    assert_eq!(body["env"]["GIT_AUTHOR_NAME"], "Molecule AI Research Lead");
    assert_eq!(
        body["env"]["GIT_AUTHOR_EMAIL"],
        "research-lead@agents.moleculesai.app"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_refused_provision_fails_the_workspace_with_the_reason(db: PgPool) {
    let fake = Fake::default();
    *fake.provision_status.lock().unwrap() = 500;
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let id = create(&app, json!({"name": "w"})).await;
    eventually(&db, STATUS, id, "failed").await;
    eventually(
        &db,
        "SELECT last_sample_error FROM workspaces WHERE id = $1",
        id,
        "provisioning failed",
    )
    .await;
    assert_eq!(
        events(&db, id, "WORKSPACE_PROVISION_FAILED").await,
        vec![json!({"error": "provisioning failed"})]
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn restart_stops_then_provisions_again(db: PgPool) {
    let fake = Fake::default();
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let id = insert_workspace(&db, "w", "langgraph", Some("i-old")).await;

    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{id}/restart"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.text,
        r#"{"config_dir":"existing-volume","reset_session":false,"status":"provisioning"}"#
    );
    eventually(&db, INSTANCE, id, &format!("i-{}", &id.to_string()[..8])).await;
    let stops = fake.calls("stop");
    assert_eq!(stops.len(), 1);
    assert_eq!(
        (
            stops[0].workspace_id.as_str(),
            stops[0].instance_id.as_str()
        ),
        (id.to_string().as_str(), "i-old")
    );
    assert_eq!(
        events(&db, id, "WORKSPACE_PROVISIONING").await,
        vec![json!({"name": "w", "runtime": "langgraph", "tier": 1})]
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn without_a_provisioner_restart_and_resume_answer_503_and_console_501(db: PgPool) {
    let (app, _state, _dir) = router(&db, None).await;
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let reply = send(&app, "POST", &format!("/workspaces/{id}/restart"), None).await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "provisioner not available",
    );
    let reply = send(&app, "POST", &format!("/workspaces/{id}/pause"), None).await;
    assert_eq!(reply.text, r#"{"paused_count":1,"status":"paused"}"#);
    let reply = send(&app, "POST", &format!("/workspaces/{id}/resume"), None).await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "provisioner not available",
    );
    let reply = send(&app, "GET", &format!("/workspaces/{id}/console"), None).await;
    assert_error(
        &reply,
        StatusCode::NOT_IMPLEMENTED,
        "console output unavailable on this deployment (no control plane)",
    );
    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{}/restart", Uuid::new_v4()),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "workspace not found");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn pause_cascades_and_resume_restores(db: PgPool) {
    let fake = Fake::default();
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let parent = insert_workspace(&db, "parent", "langgraph", Some("i-parent")).await;
    let child = insert_workspace(&db, "child", "langgraph", Some("i-child")).await;
    sqlx::query("UPDATE workspaces SET parent_id = $1, status = 'online' WHERE id = $2")
        .bind(parent)
        .bind(child)
        .execute(&db)
        .await
        .unwrap();

    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{parent}/pause"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(reply.text, r#"{"paused_count":2,"status":"paused"}"#);
    eventually(&db, STATUS, child, "paused").await;
    assert_eq!(fake.calls("stop").len(), 2);
    assert_eq!(
        events(&db, child, "WORKSPACE_PAUSED").await,
        vec![json!({"name": "child"})]
    );

    let reply = send(&app, "POST", &format!("/workspaces/{child}/resume"), None).await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "parent workspace \"parent\" is paused — resume it first",
    );
    let reply = send(&app, "POST", &format!("/workspaces/{child}/restart"), None).await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "parent workspace \"parent\" is paused — resume it first",
    );

    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{parent}/resume"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(reply.text, r#"{"resumed_count":2,"status":"provisioning"}"#);
    eventually(
        &db,
        INSTANCE,
        child,
        &format!("i-{}", &child.to_string()[..8]),
    )
    .await;
    eventually(&db, STATUS, child, "provisioning").await;
    let reply = send(&app, "POST", &format!("/workspaces/{parent}/resume"), None).await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "workspace not found or not paused",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn console_relays_the_control_plane_and_maps_its_errors_to_502(db: PgPool) {
    let fake = Fake::default();
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let id = Uuid::parse_str("11111111-1111-4111-8111-111111111111").unwrap();
    let reply = send(&app, "GET", &format!("/workspaces/{id}/console"), None).await;
    assert_eq!(reply.json, json!({"output": format!("boot log of {id}")}));
    let failing = Uuid::parse_str("01111111-1111-4111-8111-111111111111").unwrap();
    let reply = send(&app, "GET", &format!("/workspaces/{failing}/console"), None).await;
    assert_error(
        &reply,
        StatusCode::BAD_GATEWAY,
        "control plane returned an error fetching console output",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_workspace_deleted_mid_provision_leaves_no_instance(db: PgPool) {
    let fake = Fake::default();
    *fake.provision_delay.lock().unwrap() = Duration::from_millis(300);
    let (app, state, _dir) = router(&db, Some(&fake)).await;
    let id = create(&app, json!({"name": "w"})).await;
    // Mid-provision: the control plane has the request and has not answered yet.
    let in_flight = async {
        while fake.in_flight.lock().unwrap().0 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the provision reaches the control plane");
    let reply = send(&app, "DELETE", &format!("/workspaces/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    state.provisioning.drain(Duration::from_secs(10)).await;
    let provisions = fake.calls("provision");
    let stops = fake.calls("stop");
    assert_eq!(provisions.len(), 1);
    assert_eq!(stops.len(), 1, "the fresh instance is stopped");
    assert_eq!(stops[0].instance_id, provisions[0].instance_id);
    eventually(&db, STATUS, id, "removed").await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bootstrap_failed_fails_only_a_provisioning_workspace(db: PgPool) {
    let (app, _state, _dir) = router(&db, None).await;
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let url = format!("/admin/workspaces/{id}/bootstrap-failed");
    let reply = send(
        &app,
        "POST",
        &url,
        Some(&json!({"error": " ", "log_tail": "tail"})),
    )
    .await;
    assert_eq!(reply.text, r#"{"ok":true}"#);
    eventually(&db, STATUS, id, "failed").await;
    eventually(
        &db,
        "SELECT last_sample_error FROM workspaces WHERE id = $1",
        id,
        "bootstrap failed — see log_tail\n\ntail",
    )
    .await;
    assert_eq!(
        events(&db, id, "WORKSPACE_PROVISION_FAILED").await,
        vec![
            json!({"error": "bootstrap failed — see log_tail", "log_tail": "tail", "source": "bootstrap_watcher"})
        ]
    );
    let reply = send(&app, "POST", &url, Some(&json!({"error": "again"}))).await;
    assert_eq!(reply.text, r#"{"no_change":true,"ok":true}"#);
    let reply = crate::common::send_raw(&app, "POST", &url, b"nope".to_vec()).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid request body");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn hibernate_stops_the_instance_and_force_overrides_active_tasks(db: PgPool) {
    let fake = Fake::default();
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let id = insert_workspace(&db, "w", "langgraph", Some("i-h")).await;
    let url = format!("/workspaces/{id}/hibernate");
    let reply = send(&app, "POST", &url, None).await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "workspace not found or not in a hibernatable state (must be online or degraded)",
    );
    sqlx::query("UPDATE workspaces SET status = 'online', active_tasks = 2 WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let reply = send(&app, "POST", &url, None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.json,
        json!({"active_tasks": 2, "error": "workspace has active tasks; use ?force=true to terminate them"})
    );
    let reply = send(&app, "POST", &format!("{url}?force=true"), None).await;
    assert_eq!(reply.text, r#"{"status":"hibernated"}"#);
    eventually(&db, STATUS, id, "hibernated").await;
    assert_eq!(fake.calls("stop").len(), 1);
    assert_eq!(
        events(&db, id, "WORKSPACE_HIBERNATED").await,
        vec![json!({"name": "w", "tier": 1})]
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_secret_change_restarts_through_the_provisioner(db: PgPool) {
    let fake = Fake::default();
    let (app, _state, _dir) = router(&db, Some(&fake)).await;
    let id = insert_workspace(&db, "w", "langgraph", Some("i-old")).await;
    let body = json!({"key": "API_KEY", "value": "v1"});
    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{id}/secrets"),
        Some(&body),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    eventually(&db, INSTANCE, id, &format!("i-{}", &id.to_string()[..8])).await;
    assert_eq!(fake.calls("stop").len(), 1);
    assert_eq!(fake.calls("provision")[0].body["env"]["API_KEY"], "v1");
    assert!(
        events(&db, id, "WORKSPACE_RESTART_REQUESTED")
            .await
            .is_empty()
    );

    let reply = send(
        &app,
        "PUT",
        &format!("/workspaces/{id}/model"),
        Some(&json!({"model": "minimax/M2"})),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    for _ in 0..200 {
        if fake.calls("provision").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fake.calls("provision")[1].body["env"]["MODEL"],
        "minimax/M2"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_timeout_sweep_fails_stale_provisions_with_the_reason(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.provisioner.timeout_override = Some(Duration::from_secs(60));
    let state = api::AppState::new(test_services(db.clone(), config));
    let stale = insert_workspace(&db, "stale", "hermes", None).await;
    let fresh = insert_workspace(&db, "fresh", "hermes", None).await;
    sqlx::query("UPDATE workspaces SET status = 'provisioning', updated_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(stale)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE workspaces SET status = 'provisioning' WHERE id = $1")
        .bind(fresh)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        api::background::provision_timeout::sweep(&state)
            .await
            .unwrap(),
        1
    );
    eventually(&db, STATUS, stale, "failed").await;
    eventually(&db, STATUS, fresh, "provisioning").await;
    assert_eq!(
        events(&db, stale, "WORKSPACE_PROVISION_FAILED").await,
        vec![json!({
            "error": api::background::provision_timeout::TIMEOUT_MESSAGE,
            "runtime": "hermes",
            "source": "provision_timeout_sweep",
            "timeout_secs": 60,
        })]
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_instance_the_control_plane_reports_stopped_goes_offline_and_restarts(db: PgPool) {
    let fake = Fake::default();
    let (_app, state, _dir) = router(&db, Some(&fake)).await;
    let dead = insert_workspace(&db, "dead", "langgraph", Some("i-dead")).await;
    let alive = insert_workspace(&db, "alive", "langgraph", Some("i-alive")).await;
    sqlx::query("UPDATE workspaces SET status = 'online' WHERE id = ANY($1)")
        .bind(vec![dead, alive])
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(
        api::background::instance_liveness::check(&state)
            .await
            .unwrap(),
        1
    );
    eventually(
        &db,
        INSTANCE,
        dead,
        &format!("i-{}", &dead.to_string()[..8]),
    )
    .await;
    eventually(&db, STATUS, alive, "online").await;
    assert_eq!(
        events(&db, dead, "WORKSPACE_OFFLINE").await,
        vec![json!({})]
    );
    assert_eq!(fake.calls("stop")[0].instance_id, "i-dead");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_creates_all_provision_with_at_most_the_cap_in_flight(db: PgPool) {
    let fake = Fake::default();
    *fake.provision_delay.lock().unwrap() = Duration::from_millis(50);
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.provisioner = api::provisioner::ProvisionerConfig {
        org_id: Some("org-1".into()),
        base_url: Some(start_fake(fake.clone()).await),
        concurrency: 3,
        ..Default::default()
    };
    let state = api::AppState::new(test_services(db.clone(), config));
    let app = app(state.clone());
    let creates = (0..12).map(|n| {
        let app = app.clone();
        async move { create(&app, json!({"name": format!("w{n}")})).await }
    });
    let ids = futures_util::future::join_all(creates).await;
    state.provisioning.drain(Duration::from_secs(30)).await;
    let provisioned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workspaces WHERE id = ANY($1) AND instance_id IS NOT NULL",
    )
    .bind(&ids)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(provisioned, 12);
    let (now, most) = *fake.in_flight.lock().unwrap();
    assert_eq!(now, 0);
    assert!(
        (1..=3).contains(&most),
        "at most PROVISION_CONCURRENCY in flight: {most}"
    );
}
