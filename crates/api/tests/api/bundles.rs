//! `GET /bundles/export/{id}` and `POST /bundles/import` on the local backend (the EIC backend
//! is in `bundles_eic.rs`): the original's format, fresh ids and unique names, all-or-nothing
//! imports, hostile bundles.

use std::path::Path;

use crate::common::{app, send, send_raw, test_config, test_state};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

pub struct Setup {
    pub app: Router,
    pub db: PgPool,
    pub dir: tempfile::TempDir,
}

pub fn setup_with(db: PgPool, tune: impl FnOnce(&mut api::ApiConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tune(&mut config);
    Setup {
        app: app(test_state(db.clone(), config)),
        db,
        dir,
    }
}

fn setup(db: PgPool) -> Setup {
    setup_with(db, |_| {})
}

pub async fn create(app: &Router, body: Value) -> String {
    let r = send(app, "POST", "/workspaces", Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

pub async fn put_file(app: &Router, id: &str, path: &str, content: &str) {
    let r = send(
        app,
        "PUT",
        &format!("/workspaces/{id}/files/{path}"),
        Some(&json!({ "content": content })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

pub async fn read_file(app: &Router, id: &str, path: &str) -> Option<String> {
    let r = send(app, "GET", &format!("/workspaces/{id}/files/{path}"), None).await;
    (r.status == StatusCode::OK).then(|| r.json["content"].as_str().unwrap().to_string())
}

/// The top-level keys of a JSON text appear in this order (the original's struct order).
pub fn assert_in_order(text: &str, keys: &[&str]) {
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{keys:?} in {text}"
    );
}

async fn live_count(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM workspaces WHERE status <> 'removed'")
        .fetch_one(db)
        .await
        .unwrap()
}

fn folders(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("workspaces"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A root with a child, prompt, config and a skill with front matter.
async fn tree(app: &Router) -> (String, String) {
    let root = create(app, json!({"name": "Lead", "role": "leads", "tier": 2})).await;
    let child = create(app, json!({"name": "Helper", "parent_id": root})).await;
    put_file(app, &root, "system-prompt.md", "You lead.\n").await;
    put_file(
        app,
        &root,
        "config.yaml",
        "name: Lead\nruntime: claude-code\nmodel: sonnet\n",
    )
    .await;
    put_file(
        app,
        &root,
        "skills/search/SKILL.md",
        "---\nname: search\n---\n# Search\n\nFinds things.\n",
    )
    .await;
    put_file(app, &root, "skills/search/lib/util.py", "print(1)\n").await;
    put_file(app, &child, "system-prompt.md", "You help.").await;
    (root, child)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_reads_the_workspace_files(db: PgPool) {
    let s = setup(db);
    let (root, child) = tree(&s.app).await;
    let r = send(&s.app, "GET", &format!("/bundles/export/{root}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b = &r.json;
    assert_in_order(
        &r.text,
        &[
            "schema",
            "id",
            "name",
            "description",
            "tier",
            "model",
            "system_prompt",
            "skills",
            "tools",
            "prompts",
            "sub_workspaces",
            "agent_card",
            "author",
            "version",
        ],
    );
    assert_eq!(b["schema"], "1.0");
    assert_eq!(b["id"], root.as_str());
    assert_eq!(b["name"], "Lead");
    assert_eq!(b["description"], "leads");
    assert_eq!(b["tier"], 2);
    assert_eq!(b["model"], "sonnet");
    assert_eq!(b["system_prompt"], "You lead.\n");
    assert_eq!(b["tools"], json!([]));
    assert_eq!(
        b["prompts"]["config.yaml"],
        "name: Lead\nruntime: claude-code\nmodel: sonnet\n"
    );
    assert_eq!(b["skills"][0]["id"], "search");
    assert_eq!(b["skills"][0]["description"], "Finds things.");
    assert_eq!(b["skills"][0]["files"]["lib/util.py"], "print(1)\n");
    assert_eq!(b["agent_card"], Value::Null);
    assert_eq!(b["version"], "1.0.0");
    let sub = &b["sub_workspaces"][0];
    assert_eq!(sub["id"], child.as_str());
    assert_eq!(sub["name"], "Helper");
    assert_eq!(sub["system_prompt"], "You help.");
    // No secret value travels: the create stored none, and a bundle has no field for one.
    assert!(!r.text.contains("secret"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_of_unknown_or_malformed_ids_is_404(db: PgPool) {
    let s = setup(db);
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let r = send(&s.app, "GET", &format!("/bundles/export/{id}"), None).await;
        crate::common::assert_error(&r, StatusCode::NOT_FOUND, "bundle not found");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn duplicate_of_a_root_gets_fresh_ids_and_a_unique_name(db: PgPool) {
    let s = setup(db);
    let (root, _) = tree(&s.app).await;
    let bundle = send(&s.app, "GET", &format!("/bundles/export/{root}"), None)
        .await
        .json;
    let r = send(&s.app, "POST", "/bundles/import", Some(&bundle)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_in_order(&r.text, &["workspace_id", "name", "status", "children"]);
    assert_eq!(r.json["name"], "Lead (copy)");
    assert_eq!(r.json["status"], "provisioning");
    let new_root = r.json["workspace_id"].as_str().unwrap().to_string();
    assert_ne!(new_root, root);
    let new_child = r.json["children"][0]["workspace_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.json["children"][0]["name"], "Helper");
    assert!(r.json["children"][0].get("children").is_none());

    // The rows: parent, role, tier, runtime from config.yaml, source bundle id, a layout.
    let (parent, role, tier, runtime, source): (Option<uuid::Uuid>, Option<String>, i32, String, String) =
        sqlx::query_as(
            "SELECT parent_id, role, tier, runtime, source_bundle_id FROM workspaces WHERE id = $1::uuid",
        )
        .bind(&new_root)
        .fetch_one(&s.db)
        .await
        .unwrap();
    assert_eq!(
        (
            parent,
            role.as_deref(),
            tier,
            runtime.as_str(),
            source.as_str()
        ),
        (None, Some("leads"), 2, "claude-code", root.as_str())
    );
    let child_parent: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT parent_id FROM workspaces WHERE id = $1::uuid")
            .bind(&new_child)
            .fetch_one(&s.db)
            .await
            .unwrap();
    assert_eq!(child_parent.unwrap().to_string(), new_root);
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM structure_events WHERE event_type = 'WORKSPACE_PROVISIONING'
         AND workspace_id = $1::uuid AND payload->>'source_bundle_id' = $2",
    )
    .bind(&new_root)
    .bind(&root)
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(events, 1);

    // The files landed in the new workspaces.
    assert_eq!(
        read_file(&s.app, &new_root, "system-prompt.md")
            .await
            .unwrap(),
        "You lead.\n"
    );
    assert_eq!(
        read_file(&s.app, &new_root, "skills/search/lib/util.py")
            .await
            .unwrap(),
        "print(1)\n"
    );
    assert_eq!(
        read_file(&s.app, &new_child, "system-prompt.md")
            .await
            .unwrap(),
        "You help."
    );

    // Again: the next free name.
    let r = send(&s.app, "POST", "/bundles/import", Some(&bundle)).await;
    assert_eq!(r.json["name"], "Lead (copy 2)", "{}", r.text);
    // The re-export of the copy carries the same content.
    let copy = send(&s.app, "GET", &format!("/bundles/export/{new_root}"), None)
        .await
        .json;
    assert_eq!(copy["skills"], bundle["skills"]);
    assert_eq!(copy["system_prompt"], bundle["system_prompt"]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn import_takes_the_original_format_and_keeps_tier_zero(db: PgPool) {
    let s = setup(db);
    let bundle = json!({
        "name": "Solo", "tier": 0, "skills": [{"id": "s", "files": {"a.md": "A"}}],
        "prompts": {"config.yaml": "runtime: \"hermes\"\n", "other.md": "ignored"},
        "sub_workspaces": [{"name": "Kid"}, {"name": "Kid"}]
    });
    let r = send(&s.app, "POST", "/bundles/import", Some(&bundle)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["name"], "Solo");
    // Siblings with one name inside a bundle are told apart.
    assert_eq!(r.json["children"][0]["name"], "Kid");
    assert_eq!(r.json["children"][1]["name"], "Kid (copy)");
    let id = r.json["workspace_id"].as_str().unwrap();
    let (tier, runtime): (i32, String) =
        sqlx::query_as("SELECT tier, runtime FROM workspaces WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&s.db)
            .await
            .unwrap();
    // The YAML is parsed: quotes are not part of the runtime (QUIRK 14).
    assert_eq!((tier, runtime.as_str()), (0, "hermes"));
    assert_eq!(read_file(&s.app, id, "skills/s/a.md").await.unwrap(), "A");
    assert!(read_file(&s.app, id, "other.md").await.is_none());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn invalid_bundles_are_400_and_create_nothing(db: PgPool) {
    let s = setup(db);
    let r = send_raw(&s.app, "POST", "/bundles/import", b"{not json".to_vec()).await;
    crate::common::assert_error(&r, StatusCode::BAD_REQUEST, "invalid bundle");
    let r = send_raw(
        &s.app,
        "POST",
        "/bundles/import",
        br#"{"tier":"high"}"#.to_vec(),
    )
    .await;
    crate::common::assert_error(&r, StatusCode::BAD_REQUEST, "invalid bundle");
    let hostile = [
        json!({"name": "x", "skills": [{"id": "..", "files": {"a": "x"}}]}),
        json!({"name": "x", "skills": [{"id": "../../escape", "files": {"a": "x"}}]}),
        json!({"name": "x", "skills": [{"id": "s", "files": {"../../../etc/passwd": "x"}}]}),
        json!({"name": "x", "skills": [{"id": "s", "files": {"/etc/passwd": "x"}}]}),
        json!({"name": "x", "skills": [{"id": "", "files": {"/abs": "x"}}]}),
        json!({"name": "x", "skills": [{"id": "s", "files": {"a\\..\\..\\b": "x"}}]}),
        json!({"name": "ok", "sub_workspaces": [{"name": "x", "skills": [{"id": "s", "files": {"a/../../..": "x"}}]}]}),
        json!({"name": ""}),
    ];
    for bundle in hostile {
        let r = send(&s.app, "POST", "/bundles/import", Some(&bundle)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bundle}: {}", r.text);
    }
    assert_eq!(live_count(&s.db).await, 0);
    assert!(folders(s.dir.path()).is_empty());
    assert!(!s.dir.path().join("etc").exists());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn ten_thousand_entries_import_and_one_more_is_refused(db: PgPool) {
    let s = setup(db);
    let files = |n: usize| -> serde_json::Map<String, Value> {
        (0..n).map(|i| (format!("f{i}.md"), json!("x"))).collect()
    };
    let too_many = json!({"name": "big", "skills": [{"id": "s", "files": files(10_001)}]});
    let r = send(&s.app, "POST", "/bundles/import", Some(&too_many)).await;
    crate::common::assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid bundle: more than 10000 files",
    );
    assert_eq!(live_count(&s.db).await, 0);
    let at_limit = json!({"name": "big", "skills": [{"id": "s", "files": files(10_000)}]});
    let r = send(&s.app, "POST", "/bundles/import", Some(&at_limit)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json["workspace_id"].as_str().unwrap();
    let skills = s
        .dir
        .path()
        .join("workspaces")
        .join(id)
        .join("configs/skills/s");
    assert_eq!(std::fs::read_dir(skills).unwrap().count(), 10_000);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn oversized_bundles_and_files_are_413(db: PgPool) {
    let s = setup_with(db, |c| {
        c.max_bundle_bytes = Some(64 * 1024);
        c.max_file_bytes = 1024;
    });
    let huge = "x".repeat(128 * 1024);
    let r = send(
        &s.app,
        "POST",
        "/bundles/import",
        Some(&json!({"name": "a", "system_prompt": huge})),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    // A zip-bomb-sized file within a small bundle: over MAX_FILE_BYTES.
    let big = "x".repeat(2048);
    let r = send(
        &s.app,
        "POST",
        "/bundles/import",
        Some(&json!({"name": "a", "sub_workspaces": [{"name": "b", "skills": [{"id": "s", "files": {"f": big}}]}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(live_count(&s.db).await, 0);
    assert!(folders(s.dir.path()).is_empty());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_failing_node_is_named_and_nothing_stays(db: PgPool) {
    let s = setup(db);
    // The second workspace cannot be written ("a" is a file, "a/b" needs it as a folder): the
    // first one's files, already placed, are removed and no row stays.
    let bundle = json!({
        "name": "first", "system_prompt": "p",
        "sub_workspaces": [{"name": "second", "skills": [{"id": "s", "files": {"a": "x", "a/b": "y"}}]}]
    });
    let r = send(&s.app, "POST", "/bundles/import", Some(&bundle)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["workspace"], "second");
    assert_eq!(r.json["error"], "failed to import workspace \"second\"");
    assert_eq!(live_count(&s.db).await, 0);
    assert!(
        folders(s.dir.path()).is_empty(),
        "{:?}",
        folders(s.dir.path())
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn symlinks_in_a_workspace_do_not_leak_into_an_export(db: PgPool) {
    let s = setup(db);
    let id = create(&s.app, json!({"name": "Linked"})).await;
    let outside = s.dir.path().join("outside.txt");
    std::fs::write(&outside, "host secret").unwrap();
    let skills = s
        .dir
        .path()
        .join("workspaces")
        .join(&id)
        .join("configs/skills/s");
    std::fs::create_dir_all(&skills).unwrap();
    std::os::unix::fs::symlink(&outside, skills.join("leak.md")).unwrap();
    std::os::unix::fs::symlink(
        &outside,
        skills
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("system-prompt.md"),
    )
    .unwrap();
    let r = send(&s.app, "GET", &format!("/bundles/export/{id}"), None).await;
    assert!(!r.text.contains("host secret"), "{}", r.text);
}
