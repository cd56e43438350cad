//! The real binary in a tenant deployment: a fake control plane (HTTP, in the test) receives the
//! boot-time configuration call, the provision with the environment and the restart's stop; the
//! `/cp/*` proxy reaches it and refuses `..`; unmatched paths reach a fake canvas without the
//! caller's credentials.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;

const ORG: &str = "org-bb";
const ADMIN: &str = "admin-bb";

type Calls = Arc<Mutex<Vec<(String, Value)>>>;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The fake control plane: every call recorded as `(what, details)`.
async fn control_plane(calls: Calls) -> String {
    async fn config() -> axum::Json<Value> {
        axum::Json(json!({"MOLECULE_CP_SHARED_SECRET": "from-cp"}))
    }
    async fn provision(
        State(calls): State<Calls>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> (StatusCode, axum::Json<Value>) {
        let auth = headers["authorization"].to_str().unwrap().to_string();
        let id = body["workspace_id"].as_str().unwrap().to_string();
        calls
            .lock()
            .unwrap()
            .push(("provision".into(), json!({"auth": auth, "body": body})));
        (
            StatusCode::CREATED,
            axum::Json(json!({"instance_id": format!("i-{}", &id[..8])})),
        )
    }
    async fn other(State(calls): State<Calls>, request: Request) -> axum::Json<Value> {
        let what = format!("{} {}", request.method(), request.uri());
        let cookie = request
            .headers()
            .get("cookie")
            .map(|c| c.to_str().unwrap().to_string());
        calls
            .lock()
            .unwrap()
            .push((what.clone(), json!({"cookie": cookie})));
        axum::Json(json!({"seen": what}))
    }
    let router = Router::new()
        .route("/cp/tenants/config", get(config))
        .route("/cp/workspaces/provision", post(provision))
        .fallback(any(other))
        .with_state(calls);
    serve(router).await
}

fn recorded(calls: &Calls, prefix: &str) -> Vec<Value> {
    let calls = calls.lock().unwrap();
    calls
        .iter()
        .filter(|(what, _)| what.starts_with(prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

/// One request as the canvas's browser sends it to the tenant (org header, admin bearer).
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), server.url(path))
        .header("X-Molecule-Org-Id", ORG)
        .bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A raw HTTP/1.1 GET (no client-side path normalisation); the status line.
async fn raw_get(server: &TestServer, path: &str) -> String {
    let url = reqwest::Url::parse(&server.url("/")).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: tenant\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

async fn instance_of(server: &TestServer, id: &str) -> Option<String> {
    let pool = server.pool().await.unwrap();
    for _ in 0..200 {
        let instance: Option<String> =
            sqlx::query_scalar("SELECT instance_id FROM workspaces WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if instance.is_some() {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_provisions_through_the_control_plane_and_proxies_cp_and_canvas() {
    let calls = Calls::default();
    let cp = control_plane(calls.clone()).await;
    let canvas_calls = Calls::default();
    let canvas = control_plane(canvas_calls.clone()).await;
    let server = TestServer::builder()
        .env("MOLECULE_ORG_ID", ORG)
        .env("ADMIN_TOKEN", ADMIN)
        .env("MOLECULE_CP_URL", &cp)
        .env("CP_UPSTREAM_URL", &cp)
        .env("CANVAS_PROXY_URL", &canvas)
        .env("PLATFORM_URL", "http://tenant.example")
        .start()
        .await;

    let (status, created) = call(
        &server,
        "POST",
        "/workspaces",
        Some(json!({"name": "bb", "model": "minimax/M2"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let instance = instance_of(&server, &id)
        .await
        .expect("the instance id is stored");
    assert_eq!(instance, format!("i-{}", &id[..8]));
    let provisions = recorded(&calls, "provision");
    assert_eq!(
        provisions[0]["auth"], "Bearer from-cp",
        "the boot-time configuration applies"
    );
    assert_eq!(provisions[0]["body"]["env"]["MODEL"], "minimax/M2");
    assert_eq!(
        provisions[0]["body"]["platform_url"],
        "http://tenant.example"
    );

    let (status, _) = call(
        &server,
        "POST",
        &format!("/workspaces/{id}/restart"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..200 {
        if recorded(&calls, "provision").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        recorded(
            &calls,
            &format!("DELETE /cp/workspaces/{id}?instance_id={instance}")
        )
        .len(),
        1
    );
    assert_eq!(recorded(&calls, "provision").len(), 2);

    let (status, seen) = call(&server, "GET", "/cp/auth/me", None).await;
    assert_eq!(
        (status, seen),
        (StatusCode::OK, json!({"seen": "GET /cp/auth/me"}))
    );
    assert_eq!(
        raw_get(&server, "/cp/../workspaces").await,
        "HTTP/1.1 404 Not Found"
    );
    assert!(recorded(&calls, "GET /workspaces").is_empty());

    let client = reqwest::Client::new();
    let page = client
        .get(server.url("/canvas/page"))
        .header("Cookie", "session=s")
        .header("X-Molecule-Org-Id", ORG)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.json::<Value>().await.unwrap(),
        json!({"seen": "GET /canvas/page"})
    );
    assert_eq!(
        recorded(&canvas_calls, "GET /canvas/page"),
        vec![json!({"cookie": null})]
    );
}
