//! `--control-plane`: the simulator also plays the control plane a tenant's workspace-server
//! talks to (the original's `provisioner/cp_provisioner.go` contract, `cmd/server/cp_config.go`
//! and `middleware/session_auth.go` at 624ef4d0), on its own loopback port:
//!
//! - `POST /cp/workspaces/provision` takes one of the simulator's real instances (a chrooted
//!   sshd) for the workspace (the one it had before, when free) and answers `201
//!   {"instance_id", "state": "pending"}` after the configured delay; when every real instance is
//!   taken it mints a bare instance id with no sshd behind it (for benchmarks).
//! - `DELETE /cp/workspaces/{id}?instance_id=` stops it (its sshd stops; its files stay, as an
//!   EBS volume's would); `GET /cp/workspaces/{id}/status` answers its `state`;
//!   `GET /cp/admin/workspaces/{id}/console` answers `{"output"}`, a text log of its life.
//! - `GET /cp/auth/tenant-member` and `/cp/auth/me`: a member when the `Cookie` carries a session
//!   made with `POST /_sim/cp/sessions`; `GET /cp/tenants/config` answers the `--cp-config`
//!   values; any other `/cp/*` path answers 200 with what it received (for proxy tests).
//! - Faults (`POST /_sim/cp/faults`): refuse (connections closed unanswered), hang, 500, slow.
//!
//! Every call is recorded with its headers and body (`GET /_sim/cp/status`): tests read what the
//! tenant sent, secrets included. The control API stays on the simulator's main port, so that it
//! answers whatever the control plane's faults are.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use eic_sim::wire::{CpCall, CpFaultMode, CpFaults, CpFaultsPatch, CpInstance, CpStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::state::Sim;

/// Bodies recorded at most.
const BODY_CAP: usize = 1024 * 1024;

/// The simulated control plane's state.
#[derive(Debug)]
pub struct ControlPlane {
    sim: Arc<Sim>,
    config: BTreeMap<String, String>,
    faults: Mutex<CpFaults>,
    state: Mutex<CpState>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    next_bare: AtomicU64,
    shutdown: CancellationToken,
}

#[derive(Debug, Default)]
struct CpState {
    calls: Vec<CpCall>,
    /// Per workspace: its current machine.
    workspaces: BTreeMap<String, CpInstance>,
    /// Real instances taken, and by which workspace.
    taken: HashMap<String, String>,
    /// Per workspace: its console log.
    consoles: HashMap<String, Vec<String>>,
    /// Session cookie value → user id.
    sessions: HashMap<String, String>,
    started: Option<std::time::Instant>,
}

impl CpState {
    fn log(&mut self, workspace: &str, line: String) {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        let at = started.elapsed().as_secs_f64();
        self.consoles
            .entry(workspace.to_owned())
            .or_default()
            .push(format!("[{at:10.3}] {line}"));
    }
}

impl ControlPlane {
    pub fn new(
        sim: Arc<Sim>,
        config: BTreeMap<String, String>,
        faults: CpFaults,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(ControlPlane {
            sim,
            config,
            faults: Mutex::new(faults),
            state: Mutex::default(),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            next_bare: AtomicU64::new(1),
            shutdown,
        })
    }

    fn faults(&self) -> CpFaults {
        *self.faults.lock().unwrap()
    }

    fn refusing(&self) -> bool {
        self.faults().mode == CpFaultMode::Refuse
    }

    /// Takes a real instance for `workspace` (its previous one first), or mints a bare id.
    fn take_instance(&self, workspace: &str) -> (String, bool) {
        let mut state = self.state.lock().unwrap();
        let previous = state
            .workspaces
            .get(workspace)
            .filter(|i| i.real)
            .map(|i| i.instance_id.clone());
        let free = |id: &String| state.taken.get(id).is_none_or(|owner| owner == workspace);
        let chosen = previous
            .filter(|id| free(id))
            .or_else(|| self.sim.instances.keys().find(|id| free(id)).cloned());
        match chosen {
            Some(id) => {
                state.taken.insert(id.clone(), workspace.to_owned());
                (id, true)
            }
            None => {
                let n = self.next_bare.fetch_add(1, Ordering::Relaxed);
                (format!("i-bare{n:012x}"), false)
            }
        }
    }
}

/// The control plane's own routes (served on its port).
pub fn routes(cp: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/cp/workspaces/provision", post(provision))
        .route("/cp/workspaces/{id}", delete(stop))
        .route("/cp/workspaces/{id}/status", get(status))
        .route("/cp/admin/workspaces/{id}/console", get(console))
        .route("/cp/auth/tenant-member", get(tenant_member))
        .route("/cp/auth/me", get(me))
        .route("/cp/tenants/config", get(tenant_config))
        .fallback(echo)
        .layer(axum::middleware::from_fn_with_state(
            cp.clone(),
            record_and_fault,
        ))
        .with_state(cp)
}

/// Its control API, under `/_sim/cp/` on the simulator's main port.
pub fn control_routes(cp: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/_sim/cp/status", get(cp_status))
        .route("/_sim/cp/faults", get(cp_faults).post(set_cp_faults))
        .route("/_sim/cp/calls", delete(clear_calls))
        .route("/_sim/cp/sessions", post(new_session))
        .with_state(cp)
}

/// Serves the control plane on `listener` until `shutdown`.
pub async fn serve(cp: Arc<ControlPlane>, listener: TcpListener, shutdown: CancellationToken) {
    let listener = RefusingListener {
        inner: listener,
        cp: cp.clone(),
    };
    let server =
        axum::serve(listener, routes(cp)).with_graceful_shutdown(shutdown.cancelled_owned());
    if let Err(error) = server.await {
        tracing::error!(%error, "the control plane's server failed");
    }
}

/// Records the call, then applies the faults (delay, hang, 500).
async fn record_and_fault(
    State(cp): State<Arc<ControlPlane>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_CAP).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let call = CpCall {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    tracing::info!(method = %call.method, path = %call.path, "control plane call");
    // A provision is in flight from its arrival, the injected delay included.
    let _in_flight = (call.path == "/cp/workspaces/provision").then(|| InFlight::enter(&cp));
    cp.state.lock().unwrap().calls.push(call);
    let faults = cp.faults();
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    match cp.faults().mode {
        CpFaultMode::Hang => {
            cp.shutdown.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        CpFaultMode::Error => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "simulated control plane failure"})),
        )
            .into_response(),
        CpFaultMode::None | CpFaultMode::Refuse => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// Counts a provision in flight for its lifetime.
struct InFlight<'a>(&'a ControlPlane);

impl<'a> InFlight<'a> {
    fn enter(cp: &'a ControlPlane) -> Self {
        let now = cp.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        cp.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(cp)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Deserialize)]
struct ProvisionBody {
    workspace_id: String,
    #[serde(default)]
    runtime: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

async fn provision(State(cp): State<Arc<ControlPlane>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<ProvisionBody>(&body) else {
        return failure(StatusCode::BAD_REQUEST, "invalid provision request");
    };
    let workspace = request.workspace_id;
    let (instance_id, real) = cp.take_instance(&workspace);
    {
        let mut state = cp.state.lock().unwrap();
        state.log(
            &workspace,
            format!("provisioning workspace {workspace} on {instance_id}"),
        );
        let keys: Vec<&str> = request.env.keys().map(String::as_str).collect();
        state.log(&workspace, format!("environment: {}", keys.join(" ")));
    }
    if real {
        let instance = &cp.sim.instances[&instance_id];
        let mut sshd = instance.sshd.lock().await;
        if !sshd.is_running()
            && let Err(error) = sshd.start().await
        {
            tracing::error!(%instance_id, "cannot start sshd: {error:#}");
            cp.state.lock().unwrap().taken.remove(&instance_id);
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "instance failed to start",
            );
        }
    }
    let mut state = cp.state.lock().unwrap();
    let runtime = if request.runtime.is_empty() {
        "unknown".to_owned()
    } else {
        request.runtime
    };
    state.log(
        &workspace,
        format!("cloud-init: runtime {runtime} starting"),
    );
    state.log(&workspace, "sshd: listening".to_owned());
    state.workspaces.insert(
        workspace,
        CpInstance {
            instance_id: instance_id.clone(),
            state: "running".into(),
            real,
        },
    );
    (
        StatusCode::CREATED,
        Json(json!({"instance_id": instance_id, "state": "pending"})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct InstanceQuery {
    #[serde(default)]
    instance_id: Option<String>,
}

async fn stop(
    State(cp): State<Arc<ControlPlane>>,
    Path(workspace): Path<String>,
    Query(query): Query<InstanceQuery>,
) -> Response {
    let stopped = {
        let mut state = cp.state.lock().unwrap();
        let Some(current) = state.workspaces.get_mut(&workspace) else {
            return failure(StatusCode::NOT_FOUND, "unknown workspace");
        };
        if query
            .instance_id
            .as_deref()
            .is_some_and(|id| !id.is_empty() && id != current.instance_id)
        {
            return failure(StatusCode::NOT_FOUND, "unknown instance");
        }
        current.state = "stopped".into();
        let stopped = current.clone();
        if stopped.real {
            state.taken.remove(&stopped.instance_id);
        }
        state.log(
            &workspace,
            format!("instance {} stopping", stopped.instance_id),
        );
        stopped
    };
    if stopped.real
        && let Some(instance) = cp.sim.instances.get(&stopped.instance_id)
    {
        instance.sshd.lock().await.stop().await;
        cp.sim.drop_tunnels(Some(&stopped.instance_id));
    }
    Json(json!({"instance_id": stopped.instance_id, "state": "stopped"})).into_response()
}

async fn status(
    State(cp): State<Arc<ControlPlane>>,
    Path(workspace): Path<String>,
    Query(query): Query<InstanceQuery>,
) -> Response {
    let state = cp.state.lock().unwrap();
    match state.workspaces.get(&workspace) {
        Some(current)
            if query
                .instance_id
                .as_deref()
                .is_none_or(|id| id.is_empty() || id == current.instance_id) =>
        {
            Json(json!({"instance_id": current.instance_id, "state": current.state}))
                .into_response()
        }
        _ => Json(json!({"state": "terminated"})).into_response(),
    }
}

async fn console(State(cp): State<Arc<ControlPlane>>, Path(workspace): Path<String>) -> Response {
    let state = cp.state.lock().unwrap();
    match state.consoles.get(&workspace) {
        Some(lines) => {
            let mut output = lines.join("\n");
            output.push('\n');
            Json(json!({ "output": output })).into_response()
        }
        None => failure(StatusCode::NOT_FOUND, "unknown workspace"),
    }
}

/// The user id of the session the `Cookie` carries.
fn session_user(cp: &ControlPlane, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let state = cp.state.lock().unwrap();
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().strip_prefix("cp_session="))
        .find_map(|value| state.sessions.get(value).cloned())
}

async fn tenant_member(State(cp): State<Arc<ControlPlane>>, headers: HeaderMap) -> Response {
    match session_user(&cp, &headers) {
        Some(user_id) => Json(json!({"member": true, "user_id": user_id})).into_response(),
        None => failure(StatusCode::UNAUTHORIZED, "not signed in"),
    }
}

async fn me(State(cp): State<Arc<ControlPlane>>, headers: HeaderMap) -> Response {
    match session_user(&cp, &headers) {
        Some(user_id) => Json(json!({"user_id": user_id})).into_response(),
        None => failure(StatusCode::UNAUTHORIZED, "not signed in"),
    }
}

async fn tenant_config(State(cp): State<Arc<ControlPlane>>) -> Json<BTreeMap<String, String>> {
    Json(cp.config.clone())
}

/// Any other `/cp/*` call: what was received, for proxy tests.
async fn echo(request: Request) -> Json<Value> {
    let headers = request.headers();
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "cookie": get("cookie"),
        "authorization": get("authorization"),
    }))
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn cp_status(State(cp): State<Arc<ControlPlane>>) -> Json<CpStatus> {
    let state = cp.state.lock().unwrap();
    Json(CpStatus {
        faults: cp.faults(),
        calls: state.calls.clone(),
        provisions_in_flight: cp.in_flight.load(Ordering::SeqCst),
        max_provisions_in_flight: cp.max_in_flight.load(Ordering::SeqCst),
        workspaces: state.workspaces.clone(),
    })
}

async fn cp_faults(State(cp): State<Arc<ControlPlane>>) -> Json<CpFaults> {
    Json(cp.faults())
}

async fn set_cp_faults(
    State(cp): State<Arc<ControlPlane>>,
    Json(patch): Json<CpFaultsPatch>,
) -> Json<CpFaults> {
    let mut faults = cp.faults.lock().unwrap();
    faults.apply(patch);
    tracing::info!(faults = ?*faults, "control plane faults updated");
    Json(*faults)
}

async fn clear_calls(State(cp): State<Arc<ControlPlane>>) -> Json<Value> {
    let mut state = cp.state.lock().unwrap();
    let count = state.calls.len();
    state.calls.clear();
    cp.max_in_flight
        .store(cp.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    Json(json!({ "count": count }))
}

#[derive(Deserialize)]
struct SessionBody {
    user_id: String,
}

/// A new session for `user_id`: the cookie to send (`cp_session=<value>`).
async fn new_session(
    State(cp): State<Arc<ControlPlane>>,
    Json(body): Json<SessionBody>,
) -> Json<Value> {
    let value = uuid::Uuid::new_v4().simple().to_string();
    cp.state
        .lock()
        .unwrap()
        .sessions
        .insert(value.clone(), body.user_id);
    Json(json!({ "cookie": format!("cp_session={value}") }))
}

/// The control plane's listener: while the fault is `refuse`, connections are closed before a
/// request is read, new ones and kept-alive ones alike.
struct RefusingListener {
    inner: TcpListener,
    cp: Arc<ControlPlane>,
}

impl axum::serve::Listener for RefusingListener {
    type Io = RefusableIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) if self.cp.refusing() => drop(stream),
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = RefusableIo {
                        inner: stream,
                        cp: self.cp.clone(),
                    };
                    return (io, addr);
                }
                Err(error) => {
                    tracing::warn!(%error, "control plane accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection whose reads fail while the control plane refuses.
struct RefusableIo {
    inner: TcpStream,
    cp: Arc<ControlPlane>,
}

impl AsyncRead for RefusableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.cp.refusing() {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for RefusableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
