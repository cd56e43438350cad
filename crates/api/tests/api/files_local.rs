//! The files API on the local backend (`WORKSPACES_DIR/<id>/…`), against real PostgreSQL and a
//! real temporary folder, through the real router.

use std::fs;
use std::path::PathBuf;

use crate::common::{Reply, app, insert_workspace, send, send_raw, test_config, test_state};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

struct Local {
    app: axum::Router,
    dir: tempfile::TempDir,
    id: uuid::Uuid,
    db: PgPool,
}

impl Local {
    async fn new(db: PgPool) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let id = insert_workspace(&db, "local ws", "langgraph", None).await;
        let app = app(test_state(db.clone(), test_config(dir.path())));
        Local { app, dir, id, db }
    }

    fn root(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("workspaces")
            .join(self.id.to_string())
            .join(name)
    }

    fn url(&self, rest: &str) -> String {
        format!("/workspaces/{}/files{rest}", self.id)
    }

    async fn get(&self, rest: &str) -> Reply {
        send(&self.app, "GET", &self.url(rest), None).await
    }

    async fn put(&self, rest: &str, body: Value) -> Reply {
        send(&self.app, "PUT", &self.url(rest), Some(&body)).await
    }

    async fn delete(&self, rest: &str) -> Reply {
        send(&self.app, "DELETE", &self.url(rest), None).await
    }
}

fn paths(reply: &Reply) -> Vec<(String, bool)> {
    reply
        .json
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", reply.text))
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["dir"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn error(reply: &Reply) -> &str {
    reply.json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {}", reply.text))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn files_tab_sequence(db: PgPool) {
    let ws = Local::new(db).await;

    // A fresh workspace lists nothing, as `[]` (never `null`).
    let empty = ws.get("?root=/configs&depth=1").await;
    assert_eq!((empty.status, empty.text.as_str()), (StatusCode::OK, "[]"));

    let saved = ws
        .put("/config.yaml", json!({"content": "name: demo\n"}))
        .await;
    assert_eq!(saved.status, StatusCode::OK);
    assert_eq!(saved.text, r#"{"path":"config.yaml","status":"saved"}"#);
    for (path, content) in [
        ("skills/search/SKILL.md", "# search"),
        ("skills/notes.md", "n"),
        ("prompt.md", "p"),
    ] {
        let r = ws
            .put(&format!("/{path}"), json!({ "content": content }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    // List the root, then expand a folder the way the tab does (path= + depth=1).
    let root = ws.get("?root=/configs&depth=1").await;
    assert_eq!(
        paths(&root),
        [
            ("config.yaml".into(), false),
            ("prompt.md".into(), false),
            ("skills".into(), true)
        ]
    );
    assert_eq!(root.json[0]["size"], 11);
    let skills = ws.get("?root=/configs&path=skills&depth=1").await;
    assert_eq!(
        paths(&skills),
        [("notes.md".into(), false), ("search".into(), true)]
    );
    let deep = ws.get("?depth=3").await;
    assert!(paths(&deep).contains(&("skills/search/SKILL.md".into(), false)));

    let read = ws.get("/config.yaml?root=/configs").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.text,
        r#"{"content":"name: demo\n","path":"config.yaml","size":11}"#
    );

    let deleted = ws.delete("/prompt.md").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.text, r#"{"path":"prompt.md","status":"deleted"}"#);
    let again = ws.get("?depth=1").await;
    assert_eq!(
        paths(&again),
        [("config.yaml".into(), false), ("skills".into(), true)]
    );

    // What the API wrote is on disk under configs/, and no temporary file is left behind.
    assert_eq!(
        fs::read_to_string(ws.root("configs").join("skills/search/SKILL.md")).unwrap(),
        "# search"
    );
    let names: Vec<String> = fs::read_dir(ws.root("configs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn roots_are_separate_folders(db: PgPool) {
    let ws = Local::new(db).await;
    for root in ["/workspace", "/home", "/plugins"] {
        let r = ws
            .put(&format!("/a.txt?root={root}"), json!({"content": root}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let read = ws.get(&format!("/a.txt?root={root}")).await;
        assert_eq!(read.json["content"], root);
        assert_eq!(
            fs::read_to_string(ws.root(&root[1..]).join("a.txt")).unwrap(),
            root
        );
    }
    // The canvas writes without `root`: that is /configs.
    assert_eq!(ws.get("/a.txt").await.status, StatusCode::NOT_FOUND);
    // A missing file is still a successful delete, and the file is really gone after one.
    assert_eq!(ws.delete("/a.txt?root=/home").await.status, StatusCode::OK);
    assert_eq!(ws.delete("/a.txt?root=/home").await.status, StatusCode::OK);
    assert!(!ws.root("home").join("a.txt").exists());
    assert!(ws.root("plugins").join("a.txt").exists());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_requests_answer_the_original_messages(db: PgPool) {
    let ws = Local::new(db).await;
    let root_message = "root must be one of: /configs, /workspace, /home, /plugins";
    for rest in ["?root=/etc", "/x?root=/", "/x?root=configs"] {
        let r = ws.get(rest).await;
        assert_eq!(
            (r.status, error(&r)),
            (StatusCode::BAD_REQUEST, root_message),
            "{rest}"
        );
    }
    assert_eq!(
        error(&ws.put("/x?root=/tmp", json!({"content": ""})).await),
        root_message
    );
    assert_eq!(error(&ws.delete("/x?root=/etc").await), root_message);

    for depth in ["0", "6", "-1", "x", "1.5"] {
        let r = ws.get(&format!("?depth={depth}")).await;
        assert_eq!(
            (r.status, error(&r)),
            (StatusCode::BAD_REQUEST, "depth must be 1-5"),
            "{depth}"
        );
    }
    for rest in [
        "?path=..",
        "?path=/etc",
        "?path=a/../../b",
        "?path=a%5Cb",
        "?path=a%00b",
    ] {
        let r = ws.get(rest).await;
        assert_eq!(
            (r.status, error(&r)),
            (StatusCode::BAD_REQUEST, "invalid path"),
            "{rest}"
        );
    }
    // Traversal in the catch-all, raw and percent-encoded, on every method.
    for rest in [
        "/../x",
        "/a/../../x",
        "/%2e%2e/x",
        "/..%2fx",
        "/a%5C..%5Cb",
        "/%00",
        "//etc/passwd",
        "/.",
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let r = send(
                &ws.app,
                method,
                &ws.url(rest),
                Some(&json!({"content": "x"})),
            )
            .await;
            assert_eq!(
                (r.status, error(&r)),
                (StatusCode::BAD_REQUEST, "invalid path"),
                "{method} {rest}"
            );
        }
    }
    // The original's order: a bad path is reported before a bad root on reads.
    assert_eq!(error(&ws.get("/../x?root=/etc").await), "invalid path");

    // Bodies.
    let bad = send_raw(&ws.app, "PUT", &ws.url("/x"), b"{not json".to_vec()).await;
    assert_eq!(
        (bad.status, error(&bad)),
        (StatusCode::BAD_REQUEST, "invalid request body")
    );
    let wrong_type = ws.put("/x", json!({"content": 5})).await;
    assert_eq!(error(&wrong_type), "invalid request body");
    let no_content = ws.put("/empty.txt", json!({})).await;
    assert_eq!(no_content.status, StatusCode::OK);
    assert_eq!(ws.get("/empty.txt").await.json["size"], 0);

    // Unknown and malformed workspace ids.
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        for (method, uri) in [
            ("GET", format!("/workspaces/{id}/files")),
            ("GET", format!("/workspaces/{id}/files/a")),
            ("PUT", format!("/workspaces/{id}/files/a")),
            ("DELETE", format!("/workspaces/{id}/files/a")),
            ("PUT", format!("/workspaces/{id}/files")),
        ] {
            let body = json!({"content": "x", "files": {"a": "b"}});
            let r = send(&ws.app, method, &uri, Some(&body)).await;
            assert_eq!(
                (r.status, error(&r)),
                (StatusCode::NOT_FOUND, "workspace not found"),
                "{method} {uri}"
            );
        }
    }
    let missing = ws.get("/nope.yaml").await;
    assert_eq!(
        (missing.status, error(&missing)),
        (StatusCode::NOT_FOUND, "file not found on workspace")
    );
    fs::create_dir_all(ws.root("configs").join("folder")).unwrap();
    assert_eq!(ws.get("/folder").await.status, StatusCode::BAD_REQUEST);
    // A file used as a folder: 404 to read below it, 400 to write below it.
    fs::write(ws.root("configs").join("plain.txt"), "x").unwrap();
    assert_eq!(
        ws.get("/plain.txt/below").await.status,
        StatusCode::NOT_FOUND
    );
    let below = ws.put("/plain.txt/below/x", json!({"content": "x"})).await;
    assert_eq!(
        (below.status, error(&below)),
        (StatusCode::BAD_REQUEST, "a parent of the path is a file")
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sizes_over_the_limit_are_413(db: PgPool) {
    let ws = Local::new(db).await;
    let limit = 1024 * 1024;
    let at_limit = "a".repeat(limit);
    assert_eq!(
        ws.put("/big.txt", json!({ "content": at_limit }))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(ws.get("/big.txt").await.json["size"], limit);

    let over = ws
        .put("/over.txt", json!({ "content": "a".repeat(limit + 1) }))
        .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", over.text);
    assert!(error(&over).contains("too large"));
    assert!(!ws.root("configs").join("over.txt").exists());

    // A body far past any sane size is refused as 413 JSON without being buffered whole.
    let huge = send_raw(&ws.app, "PUT", &ws.url("/x"), vec![b' '; 8 * limit]).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error(&huge).contains("too large"));

    // A file that grew past the limit on disk is 413 on read, not a truncated answer.
    fs::write(ws.root("configs").join("grown.txt"), vec![b'x'; limit + 1]).unwrap();
    let read = ws.get("/grown.txt").await;
    assert_eq!(read.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn replace_validates_everything_before_writing(db: PgPool) {
    let ws = Local::new(db).await;
    let ok = ws
        .put(
            "",
            json!({"files": {"config.yaml": "a: 1", "sub/dir/x.md": "x"}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.text,
        format!(
            r#"{{"files":2,"source":"local","status":"replaced","workspace":"{}"}}"#,
            ws.id
        )
    );
    assert_eq!(
        fs::read_to_string(ws.root("configs").join("sub/dir/x.md")).unwrap(),
        "x"
    );

    // One bad path: 400 and none of the good ones written.
    let bad = ws
        .put(
            "",
            json!({"files": {"aaa.txt": "x", "../escape": "x", "zzz.txt": "x"}}),
        )
        .await;
    assert_eq!(
        (bad.status, error(&bad)),
        (StatusCode::BAD_REQUEST, "invalid request body")
    );
    assert!(!ws.root("configs").join("aaa.txt").exists());
    assert!(!ws.root("configs").join("zzz.txt").exists());

    // One oversized file: 413 and nothing written.
    let big = ws
        .put(
            "",
            json!({"files": {"a.txt": "x", "b.txt": "b".repeat(1024 * 1024 + 1)}}),
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!ws.root("configs").join("a.txt").exists());

    let many: serde_json::Map<String, Value> = (0..201)
        .map(|i| (format!("f{i}.txt"), json!("x")))
        .collect();
    let too_many = ws.put("", json!({ "files": many })).await;
    assert_eq!(
        (too_many.status, error(&too_many)),
        (StatusCode::BAD_REQUEST, "too many files (201), max 200")
    );

    let exactly: serde_json::Map<String, Value> = (0..200)
        .map(|i| (format!("f{i}.txt"), json!("x")))
        .collect();
    let max = ws.put("", json!({ "files": exactly })).await;
    assert_eq!(max.json["files"], 200);

    for body in [
        json!({}),
        json!({"files": null}),
        json!({"files": ["a"]}),
        json!({"files": {"a": 1}}),
    ] {
        let r = ws.put("", body.clone()).await;
        assert_eq!(
            (r.status, error(&r)),
            (StatusCode::BAD_REQUEST, "invalid request body"),
            "{body}"
        );
    }
}

#[cfg(unix)]
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn symlinks_cannot_escape_the_workspace(db: PgPool) {
    use std::os::unix::fs::symlink;

    let ws = Local::new(db).await;
    let outside = ws.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "secret").unwrap();
    let configs = ws.root("configs");
    fs::create_dir_all(&configs).unwrap();
    symlink(&outside, configs.join("out")).unwrap();
    symlink(outside.join("secret.txt"), configs.join("secret-link")).unwrap();
    symlink(ws.dir.path().join("nowhere"), configs.join("dangling")).unwrap();
    fs::write(configs.join("inside.txt"), "inside").unwrap();
    symlink(configs.join("inside.txt"), configs.join("inside-link")).unwrap();

    for rest in ["/out/secret.txt", "/secret-link"] {
        let r = ws.get(rest).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{rest}: {}", r.text);
        assert!(!r.text.contains("secret\""));
    }
    // Writing through a linked folder or a dangling link is refused; nothing appears outside.
    assert_eq!(
        ws.put("/out/new.txt", json!({"content": "x"})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        ws.put("/dangling/new.txt", json!({"content": "x"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert!(!outside.join("new.txt").exists());
    assert!(!ws.dir.path().join("nowhere").exists());
    // Deleting through a linked folder is refused and leaves the outside file alone.
    assert_eq!(
        ws.delete("/out/secret.txt").await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(outside.join("secret.txt").exists());
    // Writing onto a link replaces the link itself, never the file it points to.
    assert_eq!(
        ws.put("/secret-link", json!({"content": "mine"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "secret"
    );
    assert_eq!(ws.get("/secret-link").await.json["content"], "mine");
    // Links inside the root still work; links out are not listed; ?path= through one is refused.
    assert_eq!(ws.get("/inside-link").await.json["content"], "inside");
    let listed = paths(&ws.get("?depth=5").await);
    assert!(
        listed
            .iter()
            .all(|(p, _)| !p.starts_with("out") && p != "dangling"),
        "{listed:?}"
    );
    assert!(listed.contains(&("inside-link".into(), false)));
    assert_eq!(ws.get("?path=out").await.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn listing_prunes_and_honours_depth(db: PgPool) {
    let ws = Local::new(db).await;
    let configs = ws.root("configs");
    for dir in [
        ".git/objects",
        "node_modules/x",
        "__pycache__",
        "a/b/c/d/e/f",
    ] {
        fs::create_dir_all(configs.join(dir)).unwrap();
    }
    fs::write(configs.join(".DS_Store"), "x").unwrap();
    fs::write(configs.join("a/b/c/d/e/f/deep.txt"), "x").unwrap();
    let depth1 = paths(&ws.get("?depth=1").await);
    assert_eq!(depth1, [("a".into(), true)]);
    let depth5 = paths(&ws.get("?depth=5").await);
    assert_eq!(depth5.len(), 5);
    assert_eq!(depth5.last().unwrap().0, "a/b/c/d/e");
    let sub = paths(&ws.get("?path=a/b/c&depth=3").await);
    assert_eq!(
        sub,
        [
            ("d".into(), true),
            ("d/e".into(), true),
            ("d/e/f".into(), true)
        ]
    );
    assert_eq!(ws.get("?path=missing&depth=2").await.text, "[]");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn seeding_copies_a_template_into_configs(db: PgPool) {
    let ws = Local::new(db).await;
    let template = ws.dir.path().join("configs/demo");
    fs::create_dir_all(template.join("skills/s")).unwrap();
    fs::create_dir_all(template.join(".git")).unwrap();
    fs::write(template.join("config.yaml"), "name: demo\n").unwrap();
    fs::write(template.join("skills/s/SKILL.md"), "s").unwrap();
    let config = test_config(ws.dir.path());
    let copied = api::files::seed_from_template(&config, ws.id, &template)
        .await
        .unwrap();
    assert_eq!(copied, 2);
    assert_eq!(ws.get("/config.yaml").await.json["content"], "name: demo\n");
    assert_eq!(ws.get("/skills/s/SKILL.md").await.json["content"], "s");
    assert!(
        ws.root("home").is_dir() && ws.root("workspace").is_dir() && ws.root("plugins").is_dir()
    );
    assert!(!ws.root("configs").join(".git").exists());
    let _ = &ws.db;
}

/// Deleting a workspace (soft or purge, with its descendants) removes its local folder; an EC2
/// workspace's files are the control plane's to remove, and a folder of another workspace stays.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn deleting_a_workspace_removes_its_local_files(db: PgPool) {
    let ws = Local::new(db.clone()).await;
    let reply = ws
        .put("/config.yaml", json!({ "content": "name: x\n" }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let child: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO workspaces (name, parent_id) VALUES ('child', $1) RETURNING id",
    )
    .bind(ws.id)
    .fetch_one(&db)
    .await
    .unwrap();
    let other = insert_workspace(&db, "other", "langgraph", None).await;
    let folder = |id: uuid::Uuid| ws.dir.path().join("workspaces").join(id.to_string());
    for id in [child, other] {
        fs::create_dir_all(folder(id).join("configs")).unwrap();
    }
    assert!(folder(ws.id).join("configs/config.yaml").exists());

    let reply = send(
        &ws.app,
        "DELETE",
        &format!("/workspaces/{}?confirm=true", ws.id),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!folder(ws.id).exists(), "the workspace's folder is removed");
    assert!(
        !folder(child).exists(),
        "the descendant's folder is removed"
    );
    assert!(folder(other).exists(), "another workspace's folder stays");

    let reply = send(
        &ws.app,
        "DELETE",
        &format!("/workspaces/{other}?purge=true"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!folder(other).exists(), "a purge removes the folder too");
}

/// `?root=` present but empty is not `/configs`: 400 as in the original.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_empty_root_parameter_is_refused(db: PgPool) {
    let ws = Local::new(db).await;
    let reply = ws.get("?root=").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let reply = ws.get("/config.yaml?root=").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
}

/// A listing stops at `MAX_LIST_ENTRIES` and says so in `x-list-truncated`.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_listing_stops_at_max_list_entries_and_says_so(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let id = insert_workspace(&db, "many", "langgraph", None).await;
    let mut config = test_config(dir.path());
    config.max_list_entries = Some(3);
    let app = app(test_state(db, config));
    let configs = dir
        .path()
        .join("workspaces")
        .join(id.to_string())
        .join("configs");
    fs::create_dir_all(configs.join("sub")).unwrap();
    for name in ["a", "b", "sub/c", "sub/d"] {
        fs::write(configs.join(name), "x").unwrap();
    }
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/files?depth=5"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(paths(&reply).len(), 3);
    assert_eq!(reply.headers.get("x-list-truncated").unwrap(), "true");

    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/files?path=sub"),
        None,
    )
    .await;
    assert_eq!(paths(&reply).len(), 2);
    assert_eq!(reply.headers.get("x-list-truncated").unwrap(), "false");
}
