//! Any bytes as the body of any JSON route (the table's POST, PUT and PATCH routes) are answered
//! with a 4xx, or a 503 once a body is valid enough to reach the (unreachable) database: never a
//! panic, never a 500. `cargo fuzz run json_bodies` (the first input byte picks the route).
#![no_main]

use std::sync::{Arc, OnceLock};

use api::liveness::{Liveness, SchemaStatus};
use api::{ApiConfig, AppState, Services};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    routes: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = ApiConfig {
            molecule_env: "development".into(),
            configs_dir: dir.path().join("configs"),
            workspaces_dir: dir.path().join("workspaces"),
            rate_limit: u32::MAX,
            max_file_bytes: 64 * 1024,
            ..ApiConfig::default()
        };
        let router = runtime.block_on(async {
            // Nothing listens there: every query fails fast, as during an outage.
            let db = sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_millis(200))
                .connect_lazy("postgres://fuzz@127.0.0.1:1/fuzz")
                .unwrap();
            let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle();
            api::router(AppState::new(Services {
                db: db.into(),
                config: Arc::new(config),
                metrics,
                liveness: Liveness::default(),
                schema: SchemaStatus::migrated(),
                crypto: Arc::new(store::crypto::Crypto::disabled()),
                events: api::events_hub::EventsHub::default(),
                eic: None,
                messaging: api::messaging::Messaging::default(),
                provisioning: api::provisioner::Provisioning::none(),
            }))
        });
        let id = "2f1c3b4a-0000-4000-8000-000000000001";
        let routes = api::routes::table()
            .into_iter()
            .filter(|spec| matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH"))
            .map(|spec| {
                let uri = spec.path.replace("{id}", id).replace("{*path}", "fuzz.txt");
                (spec.method.to_string(), uri)
            })
            .collect();
        Harness { runtime, router, routes, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let harness = harness();
    let (method, uri) = &harness.routes[usize::from(selector) % harness.routes.len()];
    let request = Request::builder()
        .method(method.as_str())
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let response = harness
        .runtime
        .block_on(harness.router.clone().oneshot(request))
        .unwrap();
    assert_ne!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {uri} {:?}",
        String::from_utf8_lossy(body)
    );
});
