//! Hostile input (issue 7.2), through the real router on real PostgreSQL: traversal in every
//! encoding and symlink tricks against the files routes (nothing outside the workspace folder is
//! read or written), oversized, malformed and mistyped bodies on every JSON route (4xx with a
//! message, never a 5xx), huge numbers, and SQL metacharacters in every string field (stored
//! verbatim, read back identical, tables intact).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::{Reply, app, send_raw_with, test_config, test_state};
use axum::Router;
use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// Strings that would break a query built by concatenation.
const SQL_METACHARACTERS: [&str; 8] = [
    "'; DROP TABLE workspaces; --",
    "$1",
    "\\x00",
    "' OR '1'='1",
    "$$; SELECT pg_sleep(10); $$",
    "\"quoted\" \\ backslash",
    "Robert'); DELETE FROM workspace_secrets WHERE ('1'='1",
    "%s %d {0} ${HOME} `id`",
];

struct Harness {
    app: Router,
    db: PgPool,
    dir: tempfile::TempDir,
}

impl Harness {
    async fn new(db: PgPool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let app = app(test_state(db.clone(), test_config(dir.path())));
        Harness { app, db, dir }
    }

    async fn call(&self, method: &str, uri: &str, body: Vec<u8>) -> Reply {
        self.call_as(method, uri, body, None).await
    }

    async fn call_as(&self, method: &str, uri: &str, body: Vec<u8>, bearer: Option<&str>) -> Reply {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        send_raw_with(&self.app, method, uri, &headers, body).await
    }

    async fn json(&self, method: &str, uri: &str, body: &Value) -> Reply {
        self.call(method, uri, serde_json::to_vec(body).unwrap())
            .await
    }

    async fn workspace(&self, name: &str) -> Uuid {
        common::insert_workspace(&self.db, name, "langgraph", None).await
    }

    fn workspace_dir(&self, id: Uuid) -> PathBuf {
        self.dir.path().join("workspaces").join(id.to_string())
    }
}

/// A 4xx with `{"error": "<non-empty message>"}`.
fn assert_refused_with_message(reply: &Reply, what: &str) {
    assert!(
        reply.status.is_client_error(),
        "{what}: expected a 4xx, got {} {}",
        reply.status,
        reply.text
    );
    let message = reply.json["error"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty(),
        "{what}: no error message in {}",
        reply.text
    );
}

/// Every file under `root` with its content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            } else {
                files.insert(path.clone(), b"<symlink>".to_vec());
            }
        }
    }
    files
}

/// Hostile `{*path}` values as they appear in the URI, and whether the decoded path is a plain
/// name that may be stored inside the workspace (`true`) or must be refused with 400 (`false`).
fn traversal_cases() -> Vec<(String, bool)> {
    let long = "a/".repeat(2100) + "x";
    let mut cases: Vec<(String, bool)> = [
        ("..", false),
        ("../outside.txt", false),
        ("../../outside.txt", false),
        ("a/../../outside.txt", false),
        ("%2e%2e", false),
        ("%2e%2e/outside.txt", false),
        ("..%2foutside.txt", false),
        ("%2e%2e%2foutside.txt", false),
        ("%2E%2E%2F%2E%2E%2Foutside.txt", false),
        ("a/%2e%2e/%2e%2e/outside.txt", false),
        ("%2f..%2f..%2foutside.txt", false),
        ("%2fetc%2fpasswd", false),
        ("/etc/passwd", false),
        ("//etc/passwd", false),
        ("..%5c..%5coutside.txt", false),
        ("a%5cb", false),
        ("%5c%5cserver%5cshare", false),
        ("x%00.txt", false),
        ("%00", false),
        ("a%0ab", false),
        ("a%0d%0ab", false),
        ("a%7fb", false),
        // Overlong UTF-8 for '.' and '/': not UTF-8 at all, refused before any validator.
        ("%c0%ae%c0%ae/outside.txt", false),
        ("%c0%ae%c0%ae%c0%afoutside.txt", false),
        ("%e0%80%ae%e0%80%ae/outside.txt", false),
        ("%ff%fe", false),
        // Double encoding: decoded once, these are literal names inside the root.
        ("%252e%252e/inside.txt", true),
        ("%252e%252e%252foutside.txt", true),
        ("..%252foutside.txt", true),
        // Look-alikes are ordinary names to the file system.
        ("%E2%80%A4%E2%80%A4/lookalike.txt", true),
        ("%EF%BC%8E%EF%BC%8E/fullwidth.txt", true),
        ("%EF%BC%8E%EF%BC%8E%EF%BC%8Foutside.txt", true),
        ("%E2%88%95etc%E2%88%95passwd", true),
        ("a..b/c...d", true),
        ("...", true),
        ("./././inside2.txt", true),
    ]
    .into_iter()
    .map(|(raw, ok)| (raw.to_string(), ok))
    .collect();
    cases.push((long, false));
    cases.push((format!("{}.txt", "n".repeat(300)), false));
    cases
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn traversal_in_every_encoding_stays_inside_the_workspace(db: PgPool) {
    let h = Harness::new(db).await;
    let id = h.workspace("files-target").await;
    let neighbour = h.workspace("files-neighbour").await;
    let configs = h.workspace_dir(id).join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    std::fs::write(configs.join("seed.txt"), "seed").unwrap();
    let neighbour_configs = h.workspace_dir(neighbour).join("configs");
    std::fs::create_dir_all(&neighbour_configs).unwrap();
    std::fs::write(neighbour_configs.join("outside.txt"), "NEIGHBOUR-SECRET").unwrap();
    std::fs::write(h.dir.path().join("outside.txt"), "HOST-SECRET").unwrap();
    let outside_before: BTreeMap<_, _> = snapshot(h.dir.path())
        .into_iter()
        .filter(|(path, _)| !path.starts_with(h.workspace_dir(id)))
        .collect();

    for (raw, inside) in traversal_cases() {
        let uri = format!("/workspaces/{id}/files/{raw}");
        let write = h.json("PUT", &uri, &json!({"content": "HOSTILE"})).await;
        let read = h.call("GET", &uri, Vec::new()).await;
        let listed = h
            .call(
                "GET",
                &format!("/workspaces/{id}/files?path={raw}&depth=5"),
                Vec::new(),
            )
            .await;
        let deleted = h.call("DELETE", &uri, Vec::new()).await;
        for (what, reply) in [
            ("PUT", &write),
            ("GET", &read),
            ("list", &listed),
            ("DELETE", &deleted),
        ] {
            assert!(
                !reply.status.is_server_error(),
                "{what} {raw}: {} {}",
                reply.status,
                reply.text
            );
            assert!(
                !reply.text.contains("SECRET") && !reply.text.contains("root:"),
                "{what} {raw} read outside the workspace: {}",
                reply.text
            );
        }
        if inside {
            assert_eq!(write.status, StatusCode::OK, "PUT {raw}: {}", write.text);
            assert_eq!(read.json["content"], "HOSTILE", "GET {raw}: {}", read.text);
            assert_eq!(
                deleted.status,
                StatusCode::OK,
                "DELETE {raw}: {}",
                deleted.text
            );
        } else {
            for (what, reply) in [("PUT", &write), ("GET", &read), ("DELETE", &deleted)] {
                assert_eq!(
                    reply.status,
                    StatusCode::BAD_REQUEST,
                    "{what} {raw}: {}",
                    reply.text
                );
            }
            // `?path=` is decoded lossily: invalid UTF-8 becomes U+FFFD, a plain (missing) name.
            let lossy = raw.contains("%c0") || raw.contains("%e0") || raw.contains("%ff");
            let lossy_ok = lossy && listed.status == StatusCode::OK && listed.json == json!([]);
            assert!(
                lossy_ok || listed.status == StatusCode::BAD_REQUEST,
                "list ?path={raw}: {} {}",
                listed.status,
                listed.text
            );
        }
    }
    // Hostile roots are refused with the original's message.
    for root in [
        "..",
        "/configs/..",
        "%2e%2e",
        "/etc",
        "/configs%00",
        "/home/../etc",
    ] {
        let reply = h
            .call(
                "GET",
                &format!("/workspaces/{id}/files/seed.txt?root={root}"),
                Vec::new(),
            )
            .await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str()),
            (
                StatusCode::BAD_REQUEST,
                Some(api::files::relpath::ROOT_MESSAGE)
            ),
            "root={root}"
        );
    }
    // A replace with one hostile path writes nothing at all.
    let before = snapshot(h.dir.path());
    let batch = json!({"files": {"fine.txt": "x", "../outside.txt": "HOSTILE"}});
    let reply = h
        .json("PUT", &format!("/workspaces/{id}/files"), &batch)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(
        snapshot(h.dir.path()),
        before,
        "a refused replace wrote something"
    );

    let outside_after: BTreeMap<_, _> = snapshot(h.dir.path())
        .into_iter()
        .filter(|(path, _)| !path.starts_with(h.workspace_dir(id)))
        .collect();
    assert_eq!(
        outside_before, outside_after,
        "something outside the workspace changed"
    );
}

/// Path components a generated request may use: names, traversal in several encodings, and
/// `link`/`file-link`, symlinks that point out of the workspace.
fn hostile_component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%252e%252e".to_string()),
        Just("%c0%ae%c0%ae".to_string()),
        Just("%EF%BC%8E%EF%BC%8E".to_string()),
        Just("link".to_string()),
        Just("file-link".to_string()),
        Just(".".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("%00".to_string()),
        "[a-z]{1,6}",
    ]
}

fn hostile_operation() -> impl Strategy<Value = (usize, Vec<String>)> {
    (0usize..4, prop::collection::vec(hostile_component(), 1..6))
}

#[cfg(unix)]
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn generated_paths_through_symlinks_never_escape(db: PgPool) {
    use std::os::unix::fs::symlink;

    let h = Harness::new(db).await;
    let id = h.workspace("symlinked").await;
    let configs = h.workspace_dir(id).join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let outside = h.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "OUTSIDE-SECRET").unwrap();
    symlink(&outside, configs.join("link")).unwrap();
    symlink(outside.join("secret.txt"), configs.join("file-link")).unwrap();
    let outside_before = snapshot(&outside);

    // proptest generates the cases (deterministically); each runs against the async router.
    let mut runner = TestRunner::deterministic();
    let strategy = hostile_operation();
    for _ in 0..300 {
        let (operation, parts) = strategy.new_tree(&mut runner).unwrap().current();
        let raw = parts.join("/");
        let uri = format!("/workspaces/{id}/files/{raw}");
        let reply = match operation {
            0 => h.json("PUT", &uri, &json!({"content": "HOSTILE"})).await,
            1 => h.call("GET", &uri, Vec::new()).await,
            2 => h.call("DELETE", &uri, Vec::new()).await,
            _ => {
                let list = format!("/workspaces/{id}/files?path={raw}&depth=5");
                h.call("GET", &list, Vec::new()).await
            }
        };
        assert!(
            !reply.status.is_server_error(),
            "op {operation} {raw}: {} {}",
            reply.status,
            reply.text
        );
        assert!(
            !reply.text.contains("OUTSIDE-SECRET"),
            "op {operation} {raw} read outside: {}",
            reply.text
        );
        assert!(
            !reply.text.contains("secret.txt"),
            "op {operation} {raw} listed outside: {}",
            reply.text
        );
        assert_eq!(
            snapshot(&outside),
            outside_before,
            "op {operation} {raw} changed the outside"
        );
    }
}

/// POST routes that read no body, as in the original: minting a workspace token, rotating an
/// external workspace's token (the canvas sends none, or `{}`), minting an org token (whose
/// optional `{"name"}` is ignored when it does not bind), and a poll-mode agent's ack of a file.
const BODYLESS: [&str; 8] = [
    // The lifecycle actions ignore their body, as the original does.
    "/workspaces/{id}/restart",
    "/workspaces/{id}/pause",
    "/workspaces/{id}/resume",
    "/workspaces/{id}/hibernate",
    "/workspaces/{id}/tokens",
    "/workspaces/{id}/external/rotate",
    "/org/tokens",
    "/workspaces/{id}/pending-uploads/{file_id}/ack",
];

/// A minimal valid body for every route that takes JSON (the table's POST, PUT and PATCH routes).
fn json_routes(id: Uuid) -> Vec<(String, String)> {
    api::routes::table()
        .into_iter()
        .filter(|spec| matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH"))
        .filter(|spec| !BODYLESS.contains(&spec.path))
        // A schedule's "run now" reads no body (the canvas sends `{}`), as the original.
        .filter(|spec| !spec.path.ends_with("/run"))
        // Its parameters are in the query; it reads no body.
        .filter(|spec| spec.path != "/admin/a2a-queue/drop-stale")
        .map(|spec| {
            let uri = spec
                .path
                .replace("{id}", &id.to_string())
                .replace("{*path}", "notes.txt");
            (spec.method.to_string(), uri)
        })
        .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn malformed_and_oversized_bodies_are_4xx_with_a_message_on_every_json_route(db: PgPool) {
    let h = Harness::new(db).await;
    let id = h.workspace("bodies").await;
    let routes = json_routes(id);
    assert!(
        routes.len() >= 13,
        "the table lost its JSON routes: {routes:?}"
    );
    let malformed: [&[u8]; 9] = [
        b"",
        b"{",
        b"{not json}",
        b"[1,2",
        b"nul",
        b"{\"a\":}",
        b"\xff\xfe{}",
        b"{\"name\":\"x\"}trailing",
        b"\"just a string\"",
    ];
    for (method, uri) in &routes {
        for body in malformed {
            let reply = h.call(method, uri, body.to_vec()).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri} {body:?}: {}",
                reply.text
            );
            assert_refused_with_message(&reply, &format!("{method} {uri} {body:?}"));
        }
        // 64 MiB: larger than any limit of any route.
        let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(64 * 1024 * 1024)).into_bytes();
        let reply = h.call(method, uri, huge).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {uri}: {}",
            reply.text
        );
        assert!(
            !reply.text.is_empty(),
            "{method} {uri}: 413 without a message"
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn wrong_types_and_huge_numbers_are_refused_never_a_server_error(db: PgPool) {
    let h = Harness::new(db).await;
    let id = h.workspace("numbers").await;
    let ws = |rest: &str| format!("/workspaces/{id}{rest}");
    let cases: Vec<(&str, String, &str)> = vec![
        ("POST", "/workspaces".into(), r#"{"name":5}"#),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","tier":"high"}"#,
        ),
        ("POST", "/workspaces".into(), r#"{"name":"n","tier":1e309}"#),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","tier":9223372036854775808}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","tier":2147483648}"#,
        ),
        ("POST", "/workspaces".into(), r#"{"name":"n","tier":1.5}"#),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","budget_limit":9223372036854775808}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","budget_limit":12.5}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","max_concurrent_tasks":1e10}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","secrets":{"K":1}}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","secrets":["K"]}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","canvas":{"x":"left"}}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","canvas":{"x":1e309}}"#,
        ),
        (
            "POST",
            "/workspaces".into(),
            r#"{"name":"n","external":"yes"}"#,
        ),
        ("POST", "/workspaces".into(), r#"{"name":["n"]}"#),
        ("PATCH", ws(""), r#"{"tier":"high"}"#),
        ("PATCH", ws(""), r#"{"tier":9223372036854775808}"#),
        ("PATCH", ws(""), r#"{"tier":2147483648}"#),
        ("PATCH", ws(""), r#"{"x":1e309,"y":0}"#),
        ("PATCH", ws(""), r#"{"x":"a","y":0}"#),
        ("PATCH", ws(""), r#"{"collapsed":"true"}"#),
        ("PATCH", ws(""), r#"{"name":{}}"#),
        ("PATCH", ws(""), r#"{"parent_id":5}"#),
        ("PATCH", ws(""), r#"[]"#),
        ("PUT", ws("/model"), r#"{"model":5}"#),
        ("PUT", ws("/model"), r#"{"model":["a"]}"#),
        ("PUT", ws("/provider"), r#"{"provider":true}"#),
        ("PUT", ws("/files/a.txt"), r#"{"content":5}"#),
        ("PUT", ws("/files"), r#"{"files":{"a":1}}"#),
        ("PUT", ws("/files"), r#"{"files":"a"}"#),
        ("POST", ws("/activity"), r#"{"activity_type":5}"#),
        (
            "POST",
            ws("/activity"),
            r#"{"activity_type":"agent_log","duration_ms":2147483648}"#,
        ),
        (
            "POST",
            ws("/activity"),
            r#"{"activity_type":"agent_log","duration_ms":1e309}"#,
        ),
        (
            "POST",
            "/registry/heartbeat".into(),
            r#"{"workspace_id":5}"#,
        ),
        (
            "POST",
            "/registry/heartbeat".into(),
            r#"{"workspace_id":"not-a-uuid"}"#,
        ),
        (
            "POST",
            "/registry/register".into(),
            r#"{"id":"x","url":5,"agent_card":{}}"#,
        ),
        (
            "POST",
            "/registry/check-access".into(),
            r#"{"caller_id":1,"target_id":2}"#,
        ),
        (
            "PUT",
            format!("/admin/workspaces/{id}/instance"),
            r#"{"instance_id":12345678}"#,
        ),
        (
            "POST",
            "/templates/import".into(),
            r#"{"name":5,"files":{}}"#,
        ),
    ];
    for (method, uri, body) in &cases {
        let reply = h.call(method, uri, body.as_bytes().to_vec()).await;
        assert_refused_with_message(&reply, &format!("{method} {uri} {body}"));
    }
    // Heartbeat numbers are clamped or stored, never overflow into a 5xx.
    let beat = json!({"workspace_id": id, "error_rate": 1e308, "monthly_spend": i64::MAX,
                      "active_tasks": i32::MAX, "uptime_seconds": i32::MAX});
    let reply = h.json("POST", "/registry/heartbeat", &beat).await;
    assert!(!reply.status.is_server_error(), "{}", reply.text);
    let reply = h
        .json("PATCH", &ws(""), &json!({"x": 1e308, "y": -1e308}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = h.call("GET", &ws(""), Vec::new()).await;
    assert_eq!(reply.json["x"], json!(1e308), "{}", reply.text);
    // Unknown workspaces are 404s on every route that writes under one, never a foreign-key 500.
    let unknown = Uuid::new_v4();
    for (method, uri, body) in [
        (
            "POST",
            format!("/workspaces/{unknown}/activity"),
            json!({"activity_type": "agent_log"}),
        ),
        (
            "PUT",
            format!("/workspaces/{unknown}/model"),
            json!({"model": "m"}),
        ),
        (
            "PATCH",
            format!("/workspaces/{unknown}"),
            json!({"name": "n"}),
        ),
        (
            "PUT",
            format!("/workspaces/{unknown}/files/a.txt"),
            json!({"content": "x"}),
        ),
        (
            "POST",
            "/registry/heartbeat".to_string(),
            json!({"workspace_id": unknown}),
        ),
        (
            "POST",
            "/workspaces".to_string(),
            json!({"name": "orphan", "parent_id": unknown}),
        ),
    ] {
        let reply = h.json(method, &uri, &body).await;
        assert_refused_with_message(&reply, &format!("{method} {uri}"));
    }
    // Nothing above created a workspace.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces")
        .fetch_one(&h.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// The full view of one workspace from `GET /workspaces`.
async fn listed(h: &Harness, id: Uuid) -> Value {
    let reply = h.call("GET", "/workspaces", Vec::new()).await;
    reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {}", reply.text))
}

/// Name and role refuse a few shell-ish characters (`{}[]|>*&!`); the other fields take anything.
fn allowed_in_name(text: &str) -> bool {
    !text.contains(['{', '}', '[', ']', '|', '>', '*', '&', '!'])
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sql_metacharacters_are_stored_verbatim_in_every_string_field(db: PgPool) {
    let h = Harness::new(db).await;
    for (n, evil) in SQL_METACHARACTERS.iter().enumerate() {
        let name = if allowed_in_name(evil) {
            format!("{evil} #{n}")
        } else {
            format!("plain #{n}")
        };
        let role = if allowed_in_name(evil) {
            evil.to_string()
        } else {
            "role".to_string()
        };
        let dir = format!("/srv/{evil}");
        let create = json!({
            "name": name, "role": role, "runtime": evil, "model": evil,
            "workspace_dir": dir, "workspace_access": "read_only",
            "template": evil, "secrets": {evil.to_string(): evil},
        });
        let reply = h.json("POST", "/workspaces", &create).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create with {evil:?}: {}",
            reply.text
        );
        let id: Uuid = reply.json["id"].as_str().unwrap().parse().unwrap();
        let row = listed(&h, id).await;
        assert_eq!(
            (
                &row["name"],
                &row["role"],
                &row["runtime"],
                &row["workspace_dir"]
            ),
            (&json!(name), &json!(role), &json!(evil), &json!(dir)),
            "create {evil:?}"
        );
        let model = h
            .call("GET", &format!("/workspaces/{id}/model"), Vec::new())
            .await;
        assert_eq!(model.json["model"], json!(evil), "model {evil:?}");
        let secret: Vec<u8> = sqlx::query_scalar(
            "SELECT encrypted_value FROM workspace_secrets WHERE workspace_id = $1 AND key = $2",
        )
        .bind(id)
        .bind(evil)
        .fetch_one(&h.db)
        .await
        .unwrap();
        assert_eq!(
            secret,
            evil.as_bytes(),
            "secret {evil:?} (no key: stored as given)"
        );

        // PATCH every string key.
        let renamed = format!("{name} renamed");
        let patch = json!({"name": renamed, "role": role, "runtime": format!("{evil}!rt"), "workspace_dir": format!("{dir}/2")});
        let reply = h.json("PATCH", &format!("/workspaces/{id}"), &patch).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "patch {evil:?}: {}",
            reply.text
        );
        let row = listed(&h, id).await;
        assert_eq!(
            (&row["name"], &row["runtime"], &row["workspace_dir"]),
            (
                &json!(renamed),
                &json!(format!("{evil}!rt")),
                &json!(format!("{dir}/2"))
            ),
            "patch {evil:?}"
        );

        // Model and provider.
        for (path, field) in [("model", "model"), ("provider", "provider")] {
            let uri = format!("/workspaces/{id}/{path}");
            let reply = h.json("PUT", &uri, &json!({ field: evil })).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "PUT {path} {evil:?}: {}",
                reply.text
            );
            let reply = h.call("GET", &uri, Vec::new()).await;
            assert_eq!(reply.json[field], json!(evil), "GET {path} {evil:?}");
        }

        // Activity: every string field and the JSON bodies.
        let activity = json!({
            "activity_type": "agent_log", "method": evil, "summary": evil, "status": evil,
            "error_detail": evil, "request_body": {"q": evil}, "response_body": [evil],
        });
        let reply = h
            .json("POST", &format!("/workspaces/{id}/activity"), &activity)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "activity {evil:?}: {}",
            reply.text
        );
        let reply = h
            .call("GET", &format!("/workspaces/{id}/activity"), Vec::new())
            .await;
        let logged = &reply.json[0];
        for field in ["method", "summary", "status", "error_detail"] {
            assert_eq!(logged[field], json!(evil), "activity {field} {evil:?}");
        }
        assert_eq!(logged["request_body"], json!({"q": evil}));
        assert_eq!(logged["response_body"], json!([evil]));
        let filtered = h
            .call(
                "GET",
                &format!("/workspaces/{id}/activity?type={}", urlencode(evil)),
                Vec::new(),
            )
            .await;
        assert_eq!(
            filtered.json,
            json!([]),
            "a type filter is a value, not SQL: {}",
            filtered.text
        );

        // Registry: the card, the heartbeat's strings.
        let card = json!({"name": evil, "skills": [{"id": evil}]});
        let register = json!({"id": id, "url": "http://8.8.8.8:8000", "agent_card": card});
        let reply = h.json("POST", "/registry/register", &register).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "register {evil:?}: {}",
            reply.text
        );
        let token = reply.json["auth_token"].as_str().unwrap().to_string();
        let beat = json!({"workspace_id": id, "sample_error": evil, "current_task": evil,
                          "runtime_state": evil, "error_rate": 0.5});
        let reply = h
            .call_as(
                "POST",
                "/registry/heartbeat",
                serde_json::to_vec(&beat).unwrap(),
                Some(&token),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "heartbeat {evil:?}: {}",
            reply.text
        );
        let row = listed(&h, id).await;
        assert_eq!(
            (
                &row["agent_card"],
                &row["current_task"],
                &row["last_sample_error"]
            ),
            (&card, &json!(evil), &json!(evil)),
            "registry {evil:?}"
        );
        let card2 = json!({"description": evil});
        let update = json!({"workspace_id": id, "agent_card": card2});
        let reply = h
            .call_as(
                "POST",
                "/registry/update-card",
                serde_json::to_vec(&update).unwrap(),
                Some(&token),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "update-card {evil:?}: {}",
            reply.text
        );
        assert_eq!(listed(&h, id).await["agent_card"], card2);
        let check = json!({"caller_id": evil, "target_id": id.to_string()});
        let reply = h.json("POST", "/registry/check-access", &check).await;
        assert_eq!(
            reply.json,
            json!({"allowed": false}),
            "check-access {evil:?}"
        );
    }
    // Every table is still there, with exactly the rows written above.
    let workspaces: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces")
        .fetch_one(&h.db)
        .await
        .unwrap();
    assert_eq!(workspaces, SQL_METACHARACTERS.len() as i64);
    for count in [
        "SELECT count(*) FROM workspace_secrets",
        "SELECT count(*) FROM activity_logs",
        "SELECT count(*) FROM workspace_auth_tokens",
        "SELECT count(*) FROM structure_events",
    ] {
        let rows: i64 = sqlx::query_scalar(count).fetch_one(&h.db).await.unwrap();
        assert!(rows > 0, "{count}: the table lost its rows");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn nul_characters_are_refused_or_kept_never_a_server_error(db: PgPool) {
    let h = Harness::new(db).await;
    let id = h.workspace("nul").await;
    let nul = "before\u{0}after";
    let ws = |rest: &str| format!("/workspaces/{id}{rest}");
    let cases: Vec<(&str, String, Value)> = vec![
        ("POST", "/workspaces".into(), json!({"name": nul})),
        (
            "POST",
            "/workspaces".into(),
            json!({"name": "n1", "role": nul}),
        ),
        (
            "POST",
            "/workspaces".into(),
            json!({"name": "n2", "runtime": nul}),
        ),
        (
            "POST",
            "/workspaces".into(),
            json!({"name": "n3", "workspace_dir": format!("/srv/{nul}")}),
        ),
        (
            "POST",
            "/workspaces".into(),
            json!({"name": "n4", "secrets": {nul: nul}}),
        ),
        (
            "POST",
            "/workspaces".into(),
            json!({"name": "n5", "template": nul}),
        ),
        ("PATCH", ws(""), json!({"name": nul})),
        ("PATCH", ws(""), json!({"role": nul})),
        ("PATCH", ws(""), json!({"runtime": nul})),
        ("PUT", ws("/model"), json!({"model": nul})),
        ("PUT", ws("/provider"), json!({"provider": nul})),
        (
            "POST",
            ws("/activity"),
            json!({"activity_type": "agent_log", "summary": nul}),
        ),
        (
            "POST",
            ws("/activity"),
            json!({"activity_type": "agent_log", "request_body": {"k": nul}}),
        ),
        (
            "POST",
            "/registry/update-card".into(),
            json!({"workspace_id": id, "agent_card": {"n": nul}}),
        ),
        (
            "POST",
            "/registry/heartbeat".into(),
            json!({"workspace_id": id, "current_task": nul}),
        ),
        (
            "POST",
            "/registry/check-access".into(),
            json!({"caller_id": nul, "target_id": nul}),
        ),
        ("PUT", ws("/files/a.txt"), json!({"content": nul})),
    ];
    for (method, uri, body) in &cases {
        let reply = h.json(method, uri, body).await;
        assert!(
            !reply.status.is_server_error(),
            "{method} {uri} {body}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status.is_client_error() {
            assert_refused_with_message(&reply, &format!("{method} {uri} {body}"));
        }
    }
    // What was accepted reads back whole.
    let model = h.call("GET", &ws("/model"), Vec::new()).await;
    assert_eq!(model.json["model"], json!(nul));
    let file = h.call("GET", &ws("/files/a.txt"), Vec::new()).await;
    assert_eq!(file.json["content"], json!(nul));
}

/// Percent-encodes a query value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Keys the JSON routes read, so generated bodies reach past the first type check.
const BODY_KEYS: [&str; 24] = [
    "name",
    "role",
    "tier",
    "runtime",
    "model",
    "provider",
    "external",
    "url",
    "parent_id",
    "budget_limit",
    "secrets",
    "canvas",
    "x",
    "y",
    "collapsed",
    "id",
    "workspace_id",
    "agent_card",
    "instance_id",
    "activity_type",
    "content",
    "files",
    "caller_id",
    "target_id",
];

fn json_leaf(id: Uuid) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(id.to_string())),
        Just(json!("i-0123abcd")),
        Just(json!("http://8.8.8.8:8000")),
        Just(json!("agent_log")),
        prop::sample::select(SQL_METACHARACTERS.to_vec()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ]
}

fn json_body(id: Uuid) -> impl Strategy<Value = Value> {
    let value = json_leaf(id).prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_./]{1,12}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(prop::sample::select(BODY_KEYS.to_vec()), value, 0..8)
        .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn generated_json_bodies_never_cause_a_server_error(db: PgPool) {
    let h = Harness::new(db).await;
    let id = h.workspace("generated-bodies").await;
    // A well-formed A2A request to this URL-less workspace is answered 503 `workspace has no URL`
    // (a fact about its agent, not the body); the proxy's bodies are covered in `a2a_proxy`.
    let routes: Vec<_> = json_routes(id)
        .into_iter()
        .filter(|(_, uri)| !uri.ends_with("/a2a"))
        .collect();
    let mut runner = TestRunner::deterministic();
    let strategy = json_body(id);
    let mut answered = BTreeMap::<u16, usize>::new();
    for _ in 0..150 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        for (method, uri) in &routes {
            let reply = h.json(method, uri, &body).await;
            assert!(
                !reply.status.is_server_error(),
                "{method} {uri} {body}: {} {}",
                reply.status,
                reply.text
            );
            if reply.status.is_client_error() {
                assert_refused_with_message(&reply, &format!("{method} {uri} {body}"));
            }
            *answered.entry(reply.status.as_u16()).or_default() += 1;
        }
    }
    // The generator reaches past validation too, not only the 400s.
    assert!(
        answered.contains_key(&200),
        "no generated body was accepted: {answered:?}"
    );
}
