//! The read-through cache of `GET /workspaces/{id}` against real PostgreSQL: writes through this
//! process are visible at once, other replicas' writes once their notification arrives, nothing
//! is served while the listener is down, and a fill that raced an invalidation is not stored.
//!
//! Several tests turn the `workspace_changed` triggers off: a write nobody announces stays
//! invisible only if it is served from the cache, which shows the cache is in use, and one that
//! is visible anyway shows that something other than the trigger made it so.

use crate::common;

use std::time::Duration;

use api::AppState;
use api::events_hub::EventsHub;
use api::workspace_cache::{Lookup, WorkspaceCache};
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// Bounds every wait so a missing notification fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

struct Server {
    app: Router,
    state: AppState,
    db: PgPool,
    /// Stops the listener when the test ends.
    _shutdown: DropGuard,
}

impl Server {
    /// The router over a state whose hub is listening, so the cache is in use.
    async fn listening(db: PgPool) -> Server {
        Self::listening_with(db, |_| {}).await
    }

    async fn listening_with(db: PgPool, tune: impl FnOnce(&mut api::ApiConfig)) -> Server {
        let shutdown = CancellationToken::new();
        let mut config = common::test_config(&std::env::temp_dir());
        tune(&mut config);
        let mut services = common::test_services(db.clone(), config);
        services.events = EventsHub::new(shutdown.clone());
        let state = AppState::new(services);
        state
            .events
            .spawn_listener(db.clone(), state.liveness.clone());
        let server = Server {
            app: common::app(state.clone()),
            state,
            db,
            _shutdown: shutdown.drop_guard(),
        };
        server.wait_until_listening(true).await;
        server
    }

    fn cache(&self) -> &WorkspaceCache {
        self.state.events.workspace_cache()
    }

    async fn wait_until_listening(&self, listening: bool) {
        tokio::time::timeout(WAIT, async {
            while self.cache().is_listening() != listening {
                tokio::time::sleep(POLL).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the cache's listening state is not {listening}"));
    }

    /// Waits until the announcements of every write committed so far have been applied (the
    /// listener receives them in commit order), so that a body cached next stays cached.
    async fn settle(&self) {
        let marker = Uuid::new_v4();
        tokio::time::timeout(WAIT, async {
            while !self.is_cached(marker) {
                if let Lookup::Miss(ticket) = self.cache().lookup(marker) {
                    self.cache().fill(ticket, marker, Bytes::from_static(b"{}"));
                }
            }
            sqlx::query("SELECT pg_notify('workspace_changed', $1)")
                .bind(marker.to_string())
                .execute(&self.db)
                .await
                .unwrap();
            while self.is_cached(marker) {
                tokio::time::sleep(POLL).await;
            }
        })
        .await
        .expect("the marker's announcement arrives");
    }

    fn is_cached(&self, id: Uuid) -> bool {
        matches!(self.cache().lookup(id), Lookup::Hit(_))
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> common::Reply {
        common::send(&self.app, method, uri, body.as_ref()).await
    }

    async fn create(&self, body: Value) -> Uuid {
        let reply = self.call("POST", "/workspaces", Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json["id"].as_str().unwrap().parse().unwrap()
    }

    /// `GET /workspaces/{id}`, expected to answer 200; returns the body.
    async fn get(&self, id: Uuid) -> Value {
        let reply = self.call("GET", &format!("/workspaces/{id}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json
    }

    /// Polls `GET /workspaces/{id}` until `field` reads `expected`.
    async fn wait_for(&self, id: Uuid, field: &str, expected: Value) {
        tokio::time::timeout(WAIT, async {
            while self.get(id).await[field] != expected {
                tokio::time::sleep(POLL).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{field} of {id} is not {expected} within {WAIT:?}"));
    }

    /// A write in SQL, as another replica (or a background loop) makes it.
    async fn rename_in_sql(&self, id: Uuid, name: &str) {
        let updated = sqlx::query("UPDATE workspaces SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(&self.db)
            .await
            .unwrap();
        assert_eq!(updated.rows_affected(), 1);
    }

    /// Turns the `workspace_changed` triggers off: from now on writes in SQL are not announced.
    async fn silence_announcements(&self) {
        for statement in [
            "ALTER TABLE workspaces DISABLE TRIGGER workspaces_notify_changed",
            "ALTER TABLE canvas_layouts DISABLE TRIGGER canvas_layouts_notify_changed",
        ] {
            sqlx::query(statement).execute(&self.db).await.unwrap();
        }
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_patch_through_this_process_is_visible_at_once(db: PgPool) {
    let server = Server::listening(db).await;
    let id = server
        .create(json!({"name": "before", "canvas": {"x": 1, "y": 2}}))
        .await;
    server.settle().await;
    assert_eq!(server.get(id).await["name"], "before");
    assert!(server.is_cached(id));

    server.silence_announcements().await;
    server.rename_in_sql(id, "unannounced").await;
    assert_eq!(
        server.get(id).await["name"],
        "before",
        "served from the cache"
    );

    let patch = json!({"name": "after", "x": 30, "y": 40});
    let reply = server
        .call("PATCH", &format!("/workspaces/{id}"), Some(patch))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = server.get(id).await;
    assert_eq!(
        (body["name"].clone(), body["x"].clone()),
        (json!("after"), json!(30))
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_write_by_another_replica_is_visible_once_announced(db: PgPool) {
    let server = Server::listening(db).await;
    let id = server
        .create(json!({"name": "before", "canvas": {"x": 1, "y": 2}}))
        .await;
    server.settle().await;
    server.get(id).await;
    assert!(server.is_cached(id));

    server.rename_in_sql(id, "renamed elsewhere").await;
    server
        .wait_for(id, "name", json!("renamed elsewhere"))
        .await;

    server.settle().await;
    server.get(id).await;
    assert!(server.is_cached(id));
    let moved = sqlx::query("UPDATE canvas_layouts SET x = 77 WHERE workspace_id = $1")
        .bind(id)
        .execute(&server.db)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    server.wait_for(id, "x", json!(77)).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_cache_is_bypassed_while_its_listener_is_down(db: PgPool) {
    let server = Server::listening(db).await;
    let id = server.create(json!({"name": "before"})).await;
    server.settle().await;
    server.get(id).await;
    assert!(server.is_cached(id));
    server.silence_announcements().await;

    // The listener's session last ran its `LISTEN` or its periodic check (`store::events::ping`).
    let terminated: Vec<bool> = sqlx::query_scalar(
        r#"SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database()
             AND (query LIKE 'LISTEN%' OR query = 'SELECT 1 AS "one!"')"#,
    )
    .fetch_all(&server.db)
    .await
    .unwrap();
    assert_eq!(terminated, [true], "exactly the listener's backend");
    server.wait_until_listening(false).await;

    server.rename_in_sql(id, "written while down").await;
    assert_eq!(server.get(id).await["name"], "written while down");

    // The listener reconnects and the cache is in use again.
    server.wait_until_listening(true).await;
    assert_eq!(server.get(id).await["name"], "written while down");
    assert!(server.is_cached(id));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_fill_that_raced_an_invalidation_is_not_stored(db: PgPool) {
    let server = Server::listening(db).await;
    let racing = server.create(json!({"name": "racing"})).await;
    let probe = server.create(json!({"name": "probe"})).await;
    server.settle().await;
    server.get(probe).await;
    assert!(server.is_cached(probe));

    // A read takes its ticket before its query and sees the row as it was…
    let Lookup::Miss(ticket) = server.cache().lookup(racing) else {
        panic!("nothing is cached for {racing} yet")
    };
    let stale = Bytes::from(serde_json::to_vec(&server.get(racing).await).unwrap());
    // …then another replica changes it, announcing `racing` before `probe` (one transaction).
    let mut tx = server.db.begin().await.unwrap();
    for (id, name) in [(racing, "changed"), (probe, "probe changed")] {
        sqlx::query("UPDATE workspaces SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    tokio::time::timeout(WAIT, async {
        while server.is_cached(probe) {
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .expect("the probe's notification arrives");

    // …and only then hands its (stale) body to the cache: refused.
    server.cache().fill(ticket, racing, stale);
    assert!(!server.is_cached(racing));
    assert_eq!(server.get(racing).await["name"], "changed");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_deleted_workspace_and_its_descendants_answer_410_at_once(db: PgPool) {
    let server = Server::listening(db).await;
    let parent = server.create(json!({"name": "parent"})).await;
    let child = server
        .create(json!({"name": "child", "parent_id": parent}))
        .await;
    server.settle().await;
    for id in [parent, child] {
        server.get(id).await;
        assert!(server.is_cached(id));
    }
    // Only this process's own invalidation can make the removal visible now.
    server.silence_announcements().await;

    let reply = server
        .call(
            "DELETE",
            &format!("/workspaces/{parent}?confirm=true"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for id in [parent, child] {
        let reply = server.call("GET", &format!("/workspaces/{id}"), None).await;
        assert_eq!(reply.status, StatusCode::GONE, "{id}: {}", reply.text);
    }
    let reply = server
        .call(
            "GET",
            &format!("/workspaces/{child}?include_removed=true"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["status"], "removed");
    assert!(
        !server.is_cached(child),
        "removed workspaces are not cached"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn cached_and_uncached_bodies_are_the_same_bytes(db: PgPool) {
    let server = Server::listening(db).await;
    let id = server
        .create(json!({"name": "same", "canvas": {"x": 100, "y": 200.5}}))
        .await;
    server.settle().await;
    let first = server.call("GET", &format!("/workspaces/{id}"), None).await;
    assert!(server.is_cached(id));
    let second = server.call("GET", &format!("/workspaces/{id}"), None).await;
    assert_eq!(first.text, second.text);
    assert_eq!(
        first.headers["content-type"],
        second.headers["content-type"]
    );
    assert_eq!(
        second.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(
        second.text.contains(r#""x":100,"y":200.5"#),
        "{}",
        second.text
    );
}

/// A heartbeat invalidates its own workspace only, and a write to a path no route serves
/// invalidates nothing: the rest of the cache stays warm.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn agent_writes_and_unknown_paths_leave_other_workspaces_cached(db: PgPool) {
    let server = Server::listening(db).await;
    let busy = server.create(json!({"name": "busy"})).await;
    let quiet = server.create(json!({"name": "quiet"})).await;
    server.settle().await;
    server.get(busy).await;
    server.get(quiet).await;
    assert!(server.is_cached(busy) && server.is_cached(quiet));

    server.silence_announcements().await;
    let beat = json!({"workspace_id": busy, "active_tasks": 3});
    let reply = server.call("POST", "/registry/heartbeat", Some(beat)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        !server.is_cached(busy),
        "the heartbeat's workspace is read again"
    );
    assert_eq!(server.get(busy).await["active_tasks"], 3);
    assert!(server.is_cached(quiet), "another workspace stays cached");

    let reply = server.call("POST", "/no/such/route", Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(server.is_cached(busy) && server.is_cached(quiet));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_write_invalidates_only_the_workspaces_it_can_change(db: PgPool) {
    let server = Server::listening(db).await;
    let patched = server.create(json!({"name": "patched"})).await;
    let other = server.create(json!({"name": "other"})).await;
    server.settle().await;
    server.get(patched).await;
    server.get(other).await;
    server.silence_announcements().await;

    let reply = server
        .call(
            "PATCH",
            &format!("/workspaces/{patched}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        !server.is_cached(patched),
        "the PATCHed workspace is read again"
    );
    assert!(server.is_cached(other), "another workspace stays cached");
    assert_eq!(server.get(patched).await["name"], "renamed");

    // Writes that touch no cached row: creation, the canvas viewport, a global secret.
    server.create(json!({"name": "newcomer"})).await;
    let viewport = json!({"x": 1, "y": 2, "zoom": 1.5});
    let reply = server.call("PUT", "/canvas/viewport", Some(viewport)).await;
    assert!(
        reply.status.is_success(),
        "{}: {}",
        reply.status,
        reply.text
    );
    let secret = json!({"key": "SOME_KEY", "value": "v"});
    let reply = server.call("PUT", "/settings/secrets", Some(secret)).await;
    assert!(
        reply.status.is_success(),
        "{}: {}",
        reply.status,
        reply.text
    );
    assert!(
        server.is_cached(patched) && server.is_cached(other),
        "unrelated writes leave the cache alone"
    );

    // A cascading delete may reach workspaces its path does not name: everything goes.
    let reply = server
        .call("DELETE", &format!("/workspaces/{patched}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!server.is_cached(other));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn with_the_cache_off_every_read_is_a_query(db: PgPool) {
    let server = Server::listening_with(db, |c| c.disable_workspace_cache = true).await;
    let id = server.create(json!({"name": "before"})).await;
    server.settle().await;
    assert_eq!(server.get(id).await["name"], "before");
    assert!(!server.is_cached(id), "nothing is filled");
    // Unannounced, so only a read of the database can see it.
    server.silence_announcements().await;
    server.rename_in_sql(id, "after").await;
    assert_eq!(server.get(id).await["name"], "after");
}
