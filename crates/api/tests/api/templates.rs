//! `GET /templates` and `POST /templates/import` over a temporary `CONFIGS_DIR`.

use std::fs;

use crate::common::{app, send, send_raw, test_config, test_state};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

fn setup(db: PgPool) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (app(test_state(db, test_config(dir.path()))), dir)
}

fn write_template(dir: &std::path::Path, id: &str, yaml: &str) {
    let folder = dir.join("configs").join(id);
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("config.yaml"), yaml).unwrap();
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn missing_configs_dir_lists_nothing(db: PgPool) {
    let (app, _dir) = setup(db);
    let r = send(&app, "GET", "/templates", None).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "[]"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn listing_has_the_original_fields(db: PgPool) {
    let (app, dir) = setup(db);
    write_template(
        dir.path(),
        "b-full",
        r#"
name: Full
description: Everything
tier: 2
runtime: hermes
skills: [search, notes]
providers:
  - name: anthropic
    auth_mode: api_key
    model_prefixes: [anthropic, claude]
    auth_env: [ANTHROPIC_API_KEY]
runtime_config:
  model: anthropic:claude-sonnet
  models:
    - id: anthropic:claude-sonnet
      name: Sonnet
      required_env: [ANTHROPIC_API_KEY]
    - id: openai:gpt
  required_env: [ANTHROPIC_API_KEY]
  providers: [anthropic, openrouter]
  provision_timeout_seconds: 900
"#,
    );
    write_template(
        dir.path(),
        "a-legacy",
        "name: Legacy\nmodel: top-level\nruntime_config:\n  model: nested\n",
    );
    write_template(dir.path(), "c-broken", "name: [unclosed\n");
    write_template(
        dir.path(),
        "d-empty-keys",
        "name:\ndescription:\ntier:\nskills:\n",
    );
    fs::create_dir_all(dir.path().join("configs/e-no-config")).unwrap();
    fs::write(dir.path().join("configs/stray.yaml"), "name: x").unwrap();

    let r = send(&app, "GET", "/templates", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<&str> = r
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-legacy", "b-full", "d-empty-keys"]);

    // Legacy top-level model wins; absent lists are omitted; no skills key is `null`.
    assert_eq!(
        serde_json::to_string(&r.json[0]).unwrap(),
        r#"{"description":"","id":"a-legacy","model":"top-level","name":"Legacy","runtime":"","skill_count":0,"skills":null,"tier":0}"#
    );
    let text = &r.text;
    assert!(text.starts_with(r#"[{"id":"a-legacy","name":"Legacy","description":"","tier":0,"runtime":"","model":"top-level","skills":null,"skill_count":0}"#), "{text}");

    let full = &r.json[1];
    assert_eq!(full["name"], "Full");
    assert_eq!(full["tier"], 2);
    assert_eq!(full["runtime"], "hermes");
    assert_eq!(full["model"], "anthropic:claude-sonnet");
    assert_eq!(
        full["models"],
        json!([{"id":"anthropic:claude-sonnet","name":"Sonnet","required_env":["ANTHROPIC_API_KEY"]},{"id":"openai:gpt"}])
    );
    assert_eq!(full["required_env"], json!(["ANTHROPIC_API_KEY"]));
    assert_eq!(full["providers"], json!(["anthropic", "openrouter"]));
    assert_eq!(
        full["provider_registry"],
        json!([{"name":"anthropic","auth_mode":"api_key","model_prefixes":["anthropic","claude"],"auth_env":["ANTHROPIC_API_KEY"]}])
    );
    assert_eq!(full["skills"], json!(["search", "notes"]));
    assert_eq!(full["skill_count"], 2);
    assert_eq!(full["provision_timeout_seconds"], 900);

    let empty_keys = &r.json[2];
    assert_eq!(empty_keys["skills"], Value::Null);
    assert_eq!(empty_keys["tier"], 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn import_writes_a_whole_template_once(db: PgPool) {
    let (app, dir) = setup(db);
    let body = json!({
        "name": "My Agent",
        "files": {"system-prompt.md": "hello", "skills/search/SKILL.md": "# s", "notes/readme.txt": "n"}
    });
    let created = send(&app, "POST", "/templates/import", Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.text,
        r#"{"id":"my-agent","name":"My Agent","status":"imported"}"#
    );
    let folder = dir.path().join("configs/my-agent");
    assert_eq!(
        fs::read_to_string(folder.join("skills/search/SKILL.md")).unwrap(),
        "# s"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(folder.join("system-prompt.md"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The generated config.yaml makes it a listed template.
    let listed = send(&app, "GET", "/templates", None).await;
    let template = &listed.json[0];
    assert_eq!(template["id"], "my-agent");
    assert_eq!(template["name"], "My Agent");
    assert_eq!(template["tier"], 3);
    assert_eq!(template["model"], "anthropic:claude-haiku-4-5-20251001");
    assert_eq!(template["skills"], json!(["search"]));

    let again = send(&app, "POST", "/templates/import", Some(&body)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        again.text,
        r#"{"error":"template already exists","id":"my-agent"}"#
    );

    // No staging folder is left behind.
    let names: Vec<String> = fs::read_dir(dir.path().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["my-agent"]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn import_with_no_files_generates_its_config(db: PgPool) {
    let (app, dir) = setup(db);
    let r = send(
        &app,
        "POST",
        "/templates/import",
        Some(&json!({"name": "Empty", "files": {}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let config = fs::read_to_string(dir.path().join("configs/empty/config.yaml")).unwrap();
    assert!(config.contains("system-prompt.md"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn import_refuses_bad_input_before_writing(db: PgPool) {
    let (app, dir) = setup(db);
    let configs = dir.path().join("configs");
    let invalid = "invalid request body";
    for body in [
        json!({"files": {"a": "b"}}),
        json!({"name": "", "files": {"a": "b"}}),
        json!({"name": "x"}),
        json!({"name": "x", "files": null}),
        json!({"name": "x", "files": {"a": 1}}),
        json!({"name": "x", "files": {"ok.txt": "x", "../../escape": "x"}}),
        json!({"name": "x", "files": {"ok.txt": "x", "/abs": "x"}}),
    ] {
        let r = send(&app, "POST", "/templates/import", Some(&body)).await;
        assert_eq!(
            (r.status, r.json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(invalid)),
            "{body}"
        );
    }
    let malformed = send_raw(&app, "POST", "/templates/import", b"{".to_vec()).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(!configs.join("x").exists());

    let many: serde_json::Map<String, Value> =
        (0..201).map(|i| (format!("f{i}"), json!("x"))).collect();
    let r = send(
        &app,
        "POST",
        "/templates/import",
        Some(&json!({"name": "many", "files": many})),
    )
    .await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("too many files (201), max 200")
        )
    );

    let big = json!({"name": "big", "files": {"a": "x", "b": "b".repeat(1024 * 1024 + 1)}});
    let r = send(&app, "POST", "/templates/import", Some(&big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!configs.join("big").exists());

    // Traversal in the name is neutralised by normalisation, never a folder outside.
    let r = send(
        &app,
        "POST",
        "/templates/import",
        Some(&json!({"name": "../../Evil Name", "files": {}})),
    )
    .await;
    assert_eq!(r.json["id"], "evil-name");
    assert!(configs.join("evil-name/config.yaml").exists());
}
