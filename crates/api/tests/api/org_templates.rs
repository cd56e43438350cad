//! `GET /org/templates` and `POST /org/import` over a temporary `ORG_TEMPLATES_DIR`: the format
//! (`!include`, `.env`, schedules, plugins with opt-outs, channels), the preflight, creation
//! through the workspaces' create path, resume, the 207 report and hostile templates.

use std::fs;
use std::path::Path;

use crate::common::{app, assert_error, send, send_raw, test_config, test_services};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

struct Setup {
    app: Router,
    db: PgPool,
    dir: tempfile::TempDir,
}

const KEY: [u8; 32] = [7; 32];

fn setup(db: PgPool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.plugins.dir = dir.path().join("plugins");
    let mut services = test_services(db.clone(), config);
    services.crypto = std::sync::Arc::new(store::crypto::Crypto::from_key(&KEY));
    Setup {
        app: app(api::AppState::new(services)),
        db,
        dir,
    }
}

fn write(root: &Path, path: &str, content: &str) {
    let file = root.join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(file, content).unwrap();
}

impl Setup {
    fn org(&self, path: &str, content: &str) {
        write(&self.dir.path().join("org-templates"), path, content);
    }

    async fn import(&self, body: Value) -> crate::common::Reply {
        send(&self.app, "POST", "/org/import", Some(&body)).await
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }
}

/// A template using most of the format.
fn full_template(s: &Setup) {
    s.org(
        "team/org.yaml",
        r#"
name: Dev Team
description: A team
defaults:
  runtime: claude-code
  tier: 2
  plugins: [careful, audit]
  initial_prompt: Start here.
  category_routing: {bugs: [qa]}
  initial_memories: [{content: "default memory", scope: team}]
global_memories: [{content: "everyone knows", scope: local}]
required_env: [TEAM_TOKEN]
recommended_env: [NICE_TO_HAVE]
workspaces:
  - !include teams/lead.yaml
"#,
    );
    s.org(
        "team/teams/lead.yaml",
        r#"
name: Lead
role: leads the team
files_dir: lead
canvas: {x: 100, y: 50}
schedules:
  - {name: standup, cron_expr: "0 9 * * *", prompt_file: standup.md}
  - {name: bad, cron_expr: "not cron", prompt: p}
channels:
  - {type: telegram, config: {bot_token: "${BOT_TOKEN}", chat: "42"}, allowed_users: [ann]}
  - {type: carrier-pigeon, config: {}}
  - {type: slack, config: {token: "${NOT_SET}"}}
children:
  - !include ../dev/workspace.yaml
  - name: QA
    runtime: langgraph
    tier: 1
    plugins: ["!audit", extra]
    system_prompt: Test everything.
"#,
    );
    s.org(
        "team/dev/workspace.yaml",
        "name: Dev\nmodel: opus\ninitial_memories: [{content: \"own memory\"}]\nchildren: [{name: Intern, external: true, url: \"http://8.8.8.8:9000\"}]\n",
    );
    s.org("team/.env", "TEAM_TOKEN=from-root\nSHARED=root\n");
    s.org("team/lead/.env", "BOT_TOKEN=bot-123\nSHARED=lead\n");
    s.org("team/lead/system-prompt.md", "Lead prompt.");
    s.org("team/lead/standup.md", "Run the standup.");
    // Pre-installed plugins come from the plugin registry (PLUGINS_DIR).
    write(
        s.dir.path(),
        "plugins/careful/plugin.yaml",
        "name: careful\n",
    );
    write(s.dir.path(), "plugins/careful/rules/r.md", "be careful");
    write(s.dir.path(), "plugins/audit/plugin.yaml", "name: audit\n");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn listing_summarises_each_template(db: PgPool) {
    let s = setup(db);
    let r = send(&s.app, "GET", "/org/templates", None).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "[]"));
    full_template(&s);
    s.org("yml/org.yml", "name: Yml\nworkspaces: [{name: a}]\n");
    s.org("broken/org.yaml", "name: [unclosed\n");
    s.org(
        "escape/org.yaml",
        "name: E\nworkspaces: [!include ../../outside.yaml]\n",
    );
    fs::create_dir_all(s.dir.path().join("org-templates/empty")).unwrap();
    let r = send(&s.app, "GET", "/org/templates", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json,
        json!([
            {"description": "A team", "dir": "team", "name": "Dev Team",
             "recommended_env": ["NICE_TO_HAVE"], "required_env": ["TEAM_TOKEN"], "workspaces": 4},
            {"description": "", "dir": "yml", "name": "Yml",
             "recommended_env": [], "required_env": [], "workspaces": 1}
        ])
    );
    // Keys in the original's (alphabetical) order.
    assert!(
        r.text
            .starts_with(r#"[{"description":"A team","dir":"team","name""#),
        "{}",
        r.text
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn invalid_requests_answer_as_the_original(db: PgPool) {
    let s = setup(db);
    s.org("cycle/org.yaml", "name: C\nworkspaces: [!include a.yaml]\n");
    s.org("cycle/a.yaml", "name: a\nchildren: [!include a.yaml]\n");
    s.org(
        "escape/org.yaml",
        "name: E\nworkspaces: [!include ../../outside.yaml]\n",
    );
    s.org(
        "absolute/org.yaml",
        "name: A\nworkspaces: [!include /etc/hostname]\n",
    );
    s.org(
        "types/org.yaml",
        "name: T\nworkspaces: [{name: a, tier: high}]\n",
    );
    s.org("badenv/org.yaml", "name: B\nrequired_env: [{any_of: []}]\n");
    write(s.dir.path(), "outside.yaml", "name: outside\n");
    let r = send_raw(&s.app, "POST", "/org/import", b"{nope".to_vec()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid request body");
    let r = s
        .import(json!({"template": {"name": "x", "required_env": [{"any_of": []}]}}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid request body");
    for dir in ["../x", "/etc", "a/../../b"] {
        let r = s.import(json!({ "dir": dir })).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid org directory");
    }
    let r = s.import(json!({"dir": "nope"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "org template not found: nope");
    for dir in ["cycle", "escape", "absolute"] {
        let r = s.import(json!({ "dir": dir })).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "org template expansion failed");
    }
    for dir in ["types", "badenv"] {
        let r = s.import(json!({ "dir": dir })).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid org template");
    }
    for body in [
        json!({}),
        json!({"template": {"workspaces": [{"name": "a"}]}}),
    ] {
        let r = s.import(body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "provide 'dir' or 'template'");
    }
    assert_eq!(s.count("SELECT count(*) FROM workspaces").await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn preflight_names_the_missing_keys(db: PgPool) {
    let s = setup(db);
    s.org(
        "needs/org.yaml",
        "name: Needs\nrequired_env: [GITHUB_TOKEN, {any_of: [ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN]}, FROM_ENV_FILE]\nworkspaces: [{name: a}]\n",
    );
    s.org("needs/.env", "FROM_ENV_FILE=yes\n");
    let r = s.import(json!({"dir": "needs"})).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);
    assert_eq!(
        r.json,
        json!({
            "error": "missing required environment variables",
            "missing_env": ["GITHUB_TOKEN", {"any_of": ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]}],
            "required_env": ["FROM_ENV_FILE", "GITHUB_TOKEN", {"any_of": ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]}],
            "suggestion": "set these as global secrets (POST /settings/secrets) before importing",
            "template": "Needs"
        })
    );
    assert_eq!(s.count("SELECT count(*) FROM workspaces").await, 0);
    for key in ["GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"] {
        let r = send(
            &s.app,
            "POST",
            "/settings/secrets",
            Some(&json!({"key": key, "value": "v"})),
        )
        .await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let r = s.import(json!({"dir": "needs"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn import_creates_the_tree_in_order_with_everything(db: PgPool) {
    let s = setup(db);
    full_template(&s);
    let r = s.import(json!({"dir": "team"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["count"], 4);
    assert_eq!(r.json["org"], "Dev Team");
    assert!(r.json.get("error").is_none());
    let entries = r.json["workspaces"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lead", "Dev", "Intern", "QA"]);
    let _ = entries;
    let lead = &r.json["workspaces"][0];
    assert_eq!(lead["tier"], 2);
    assert_eq!(lead["channels"], json!(["telegram"]));
    assert_eq!(
        lead["channels_skipped"],
        json!([
            {"workspace": "Lead", "type": "carrier-pigeon", "reason": "unknown adapter"},
            {"workspace": "Lead", "type": "slack", "reason": "missing env: [${NOT_SET}]"}
        ])
    );
    assert_eq!(r.json["workspaces"][3]["tier"], 1);
    let id = |i: usize| r.json["workspaces"][i]["id"].as_str().unwrap().to_string();
    let (lead_id, dev_id, intern_id, qa_id) = (id(0), id(1), id(2), id(3));

    // Rows: parents, runtime, role, status (the external one online).
    let row = |id: String| {
        let db = s.db.clone();
        async move {
            sqlx::query_as::<_, (Option<uuid::Uuid>, String, Option<String>, String, i32)>(
                "SELECT parent_id, runtime, role, status::text, tier FROM workspaces WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let lead_row = row(lead_id.clone()).await;
    assert_eq!(lead_row.0, None);
    assert_eq!(
        (lead_row.1.as_str(), lead_row.2.as_deref()),
        ("claude-code", Some("leads the team"))
    );
    assert_eq!(row(dev_id.clone()).await.0.unwrap().to_string(), lead_id);
    assert_eq!(row(intern_id.clone()).await.0.unwrap().to_string(), dev_id);
    assert_eq!(row(intern_id.clone()).await.3, "online");
    assert_eq!(row(qa_id.clone()).await.1, "langgraph");

    // Layout: roots where the YAML says; children in the canvas grid (absolute).
    let xy = |id: String| {
        let db = s.db.clone();
        async move {
            sqlx::query_as::<_, (f64, f64)>(
                "SELECT x, y FROM canvas_layouts WHERE workspace_id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    assert_eq!(xy(lead_id.clone()).await, (100.0, 50.0));
    assert_eq!(xy(dev_id.clone()).await, (116.0, 180.0));
    // Dev holds one leaf: 240 + 32 wide; QA is the second column.
    assert_eq!(xy(qa_id.clone()).await, (116.0 + 272.0 + 14.0, 180.0));

    // Secrets from the .env files, encrypted with the current version tag (QUIRK 23 fixed).
    let secrets: Vec<(String, i32)> = sqlx::query_as(
        "SELECT key, encryption_version FROM workspace_secrets WHERE workspace_id = $1::uuid ORDER BY key",
    )
    .bind(&lead_id)
    .fetch_all(&s.db)
    .await
    .unwrap();
    let crypto = store::crypto::Crypto::from_key(&KEY);
    assert!(
        secrets
            .iter()
            .all(|(_, v)| *v == crypto.current_version() && *v != 0),
        "{secrets:?}"
    );
    let keys: Vec<&str> = secrets.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"BOT_TOKEN") && keys.contains(&"TEAM_TOKEN") && keys.contains(&"SHARED")
    );
    let shared = store::secrets::get(&s.db, &crypto, lead_id.parse().unwrap(), "SHARED")
        .await
        .unwrap();
    assert_eq!(shared.as_deref(), Some("lead"));

    // Schedules (the invalid cron skipped), channels, memories.
    let schedules: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, prompt, source FROM workspace_schedules WHERE workspace_id = $1::uuid",
    )
    .bind(&lead_id)
    .fetch_all(&s.db)
    .await
    .unwrap();
    assert_eq!(
        schedules,
        [(
            "standup".into(),
            "Run the standup.".into(),
            "template".into()
        )]
    );
    let channel: (Value, Value) = sqlx::query_as(
        "SELECT channel_config, allowed_users FROM workspace_channels WHERE workspace_id = $1::uuid",
    )
    .bind(&lead_id)
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(
        channel,
        (
            json!({"bot_token": "bot-123", "chat": "42"}),
            json!(["ann"])
        )
    );
    let memories: Vec<(String, String)> = sqlx::query_as(
        "SELECT content, scope FROM agent_memories WHERE workspace_id = $1::uuid ORDER BY content",
    )
    .bind(&lead_id)
    .fetch_all(&s.db)
    .await
    .unwrap();
    assert_eq!(
        memories,
        [
            ("default memory".into(), "TEAM".into()),
            ("everyone knows".into(), "GLOBAL".into())
        ]
    );
    let dev_memories: Vec<String> =
        sqlx::query_scalar("SELECT content FROM agent_memories WHERE workspace_id = $1::uuid")
            .bind(&dev_id)
            .fetch_all(&s.db)
            .await
            .unwrap();
    assert_eq!(dev_memories, ["own memory"]);

    // Events: one WORKSPACE_PROVISIONING per created node, WORKSPACE_ONLINE for the external one.
    assert_eq!(
        s.count(
            "SELECT count(*) FROM structure_events WHERE event_type = 'WORKSPACE_PROVISIONING'"
        )
        .await,
        4
    );
    assert_eq!(
        s.count("SELECT count(*) FROM structure_events WHERE event_type = 'WORKSPACE_ONLINE'")
            .await,
        1
    );

    // Files: files_dir copied (without its .env), config generated, plugins pre-installed.
    let configs = |id: &str| s.dir.path().join("workspaces").join(id).join("configs");
    assert_eq!(
        fs::read_to_string(configs(&lead_id).join("system-prompt.md")).unwrap(),
        "Lead prompt."
    );
    assert!(!configs(&lead_id).join(".env").exists());
    let config = fs::read_to_string(configs(&lead_id).join("config.yaml")).unwrap();
    let parsed: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
    assert_eq!(parsed["name"], "Lead");
    assert_eq!(parsed["description"], "leads the team");
    assert_eq!(parsed["runtime"], "claude-code");
    assert_eq!(parsed["model"], "sonnet");
    assert_eq!(parsed["initial_prompt"], "Start here.");
    assert_eq!(parsed["category_routing"]["bugs"][0], "qa");
    assert_eq!(
        fs::read_to_string(configs(&lead_id).join("plugins/careful/rules/r.md")).unwrap(),
        "be careful"
    );
    assert!(configs(&lead_id).join("plugins/audit/plugin.yaml").exists());
    // QA opted out of `audit`; `extra` does not exist and is skipped.
    assert!(configs(&qa_id).join("plugins/careful").exists());
    assert!(!configs(&qa_id).join("plugins/audit").exists());
    assert_eq!(
        fs::read_to_string(configs(&qa_id).join("system-prompt.md")).unwrap(),
        "Test everything."
    );
    let dev_config: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(configs(&dev_id).join("config.yaml")).unwrap())
            .unwrap();
    assert_eq!(dev_config["model"], "opus");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn reimport_resumes_instead_of_duplicating(db: PgPool) {
    let s = setup(db);
    full_template(&s);
    let first = s.import(json!({"dir": "team"})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = s.import(json!({"dir": "team"})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.json["count"], 4);
    for (a, b) in first.json["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .zip(again.json["workspaces"].as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(b["skipped"], true);
    }
    assert_eq!(s.count("SELECT count(*) FROM workspaces").await, 4);
    // Global memories are not seeded twice.
    assert_eq!(
        s.count("SELECT count(*) FROM agent_memories WHERE scope = 'GLOBAL'")
            .await,
        1
    );
    assert_eq!(s.count("SELECT count(*) FROM workspace_schedules").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_fatal_error_answers_207_and_a_fixed_reimport_resumes(db: PgPool) {
    let s = setup(db);
    let template = |access: &str| {
        json!({"template": {"name": "Partial", "workspaces": [
            {"name": "one", "children": [{"name": "one-kid"}]},
            {"name": "two", "workspace_access": access},
            {"name": "three"}
        ]}})
    };
    let r = s.import(template("everything")).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.text);
    assert_eq!(r.json["count"], 2);
    assert_eq!(r.json["error"], "workspace two: invalid workspace access");
    crate::bundles::assert_in_order(&r.text, &["count", "error", "org", "workspaces"]);
    assert_eq!(s.count("SELECT count(*) FROM workspaces").await, 2);
    let r = s.import(template("none")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let skipped: Vec<bool> = r.json["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["skipped"] == true)
        .collect();
    assert_eq!(skipped, [true, true, false, false]);
    assert_eq!(s.count("SELECT count(*) FROM workspaces").await, 4);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn hostile_templates_stay_inside_their_folder(db: PgPool) {
    let s = setup(db);
    write(s.dir.path(), "secret.env", "STOLEN=1\n");
    write(s.dir.path(), "plugins/../../escape/plugin.yaml", "x");
    fs::create_dir_all(s.dir.path().join("org-templates/evil")).unwrap();
    std::os::unix::fs::symlink(s.dir.path(), s.dir.path().join("org-templates/evil/link")).unwrap();
    std::os::unix::fs::symlink(
        s.dir.path().join("secret.env"),
        s.dir.path().join("org-templates/evil/.env"),
    )
    .unwrap();
    s.org(
        "evil/org.yaml",
        r#"
name: Evil
workspaces:
  - name: a
    files_dir: ../..
    initial_prompt_file: /etc/passwd
    plugins: ["../../escape", "/etc", ".."]
    system_prompt: ok
  - name: b
    files_dir: link
    idle_prompt_file: link/secret.env
"#,
    );
    let r = s.import(json!({"dir": "evil"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(s.count("SELECT count(*) FROM workspace_secrets").await, 0);
    for entry in r.json["workspaces"].as_array().unwrap() {
        let configs = s
            .dir
            .path()
            .join("workspaces")
            .join(entry["id"].as_str().unwrap())
            .join("configs");
        let mut seen = Vec::new();
        let mut stack = vec![configs.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(dir).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    seen.push(fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        assert!(
            seen.iter()
                .all(|c| !c.contains("STOLEN") && !c.contains("root:")),
            "{seen:?}"
        );
        assert!(!configs.join("plugins").join("escape").exists());
    }
    // A symlinked template folder pointing outside ORG_TEMPLATES_DIR is not a template.
    std::os::unix::fs::symlink(
        s.dir.path().join("plugins"),
        s.dir.path().join("org-templates/out"),
    )
    .unwrap();
    write(s.dir.path(), "plugins/org.yaml", "name: Out\n");
    let r = s.import(json!({"dir": "out"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_huge_template_is_refused(db: PgPool) {
    let s = setup(db);
    let nodes: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("n{i}")}))
        .collect();
    let r = s
        .import(json!({"template": {"name": "Huge", "workspaces": nodes}}))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid org template");
    let big = format!("name: Big\ndescription: {}\n", "x".repeat(2 * 1024 * 1024));
    s.org("big/org.yaml", &big);
    let r = s.import(json!({"dir": "big"})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid org template");
    assert_eq!(s.count("SELECT count(*) FROM workspaces").await, 0);
}
