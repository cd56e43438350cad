//! Workspace metadata routes through the real router against real PostgreSQL:
//! every status and message of list, create, get, patch, delete and `/state`.

use crate::common::{
    Reply, app, send, send_raw, send_with, test_config, test_services, test_state,
};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

struct Api {
    app: axum::Router,
    dir: tempfile::TempDir,
}

impl Api {
    /// Dev mode: the guards pass, so these tests see the handlers alone.
    fn new(db: PgPool) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let app = app(test_state(db, test_config(dir.path())));
        Api { app, dir }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        send(&self.app, method, uri, body.as_ref()).await
    }

    async fn create(&self, body: Value) -> Uuid {
        let reply = self.call("POST", "/workspaces", Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json["id"].as_str().unwrap().parse().unwrap()
    }
}

async fn events_of(db: &PgPool, id: Uuid, event_type: &str) -> Vec<Value> {
    sqlx::query_scalar::<_, Option<Value>>(
        "SELECT payload FROM structure_events WHERE workspace_id = $1 AND event_type = $2",
    )
    .bind(id)
    .bind(event_type)
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .map(Option::unwrap_or_default)
    .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn list_is_an_empty_array_on_a_fresh_database(db: PgPool) {
    let api = Api::new(db);
    let reply = api.call("GET", "/workspaces", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text, "[]");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_applies_the_defaults_and_answers_provisioning(db: PgPool) {
    let api = Api::new(db.clone());
    let reply = api
        .call(
            "POST",
            "/workspaces",
            Some(json!({"name": "Echo Agent", "tier": 0})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.json["id"].as_str().unwrap();
    assert_eq!(
        reply.text,
        format!(
            r#"{{"awareness_namespace":"workspace:{id}","id":"{id}","status":"provisioning","workspace_access":"none"}}"#
        )
    );
    let row: (i32, String, String, String, String, i32) = sqlx::query_as(
        "SELECT tier, runtime, workspace_access, delivery_mode, status::text, max_concurrent_tasks
         FROM workspaces WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            3,
            "langgraph".into(),
            "none".into(),
            "push".into(),
            "provisioning".into(),
            1
        )
    );
    let events = events_of(&db, id.parse().unwrap(), "WORKSPACE_PROVISIONING").await;
    assert_eq!(
        events,
        vec![json!({"name": "Echo Agent", "tier": 3, "runtime": "langgraph"})]
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_validates_in_order_with_the_original_messages(db: PgPool) {
    let api = Api::new(db);
    let cases = [
        (json!({}), "invalid workspace payload"),
        (json!({"name": ""}), "invalid workspace payload"),
        (json!({"name": 5}), "invalid workspace payload"),
        (
            json!({"name": "a", "budget_limit": 1.5}),
            "invalid workspace payload",
        ),
        (json!({"name": "a\nb"}), "invalid workspace fields"),
        (json!({"name": "a|b"}), "invalid workspace fields"),
        (
            json!({"name": "ok", "role": "x".repeat(1001)}),
            "invalid workspace fields",
        ),
        (
            json!({"name": "ok", "model": "m".repeat(101)}),
            "invalid workspace fields",
        ),
        (
            json!({"name": "ok", "template": "../etc"}),
            "invalid template",
        ),
        (
            json!({"name": "ok", "template": "/etc", "runtime": "x", "model": "y"}),
            "invalid template",
        ),
        (
            json!({"name": "ok", "workspace_dir": "relative"}),
            "invalid workspace directory",
        ),
        (
            json!({"name": "ok", "workspace_dir": "/etc/x"}),
            "invalid workspace directory",
        ),
        (
            json!({"name": "ok", "workspace_access": "read_only"}),
            "invalid workspace access",
        ),
        (
            json!({"name": "ok", "workspace_access": "all"}),
            "invalid workspace access",
        ),
        (
            json!({"name": "ok", "delivery_mode": "smoke"}),
            "delivery_mode must be 'push' or 'poll'",
        ),
        (
            json!({"name": "ok", "parent_id": Uuid::new_v4()}),
            "parent workspace not found",
        ),
        (
            json!({"name": "ok", "parent_id": "not-a-uuid"}),
            "parent workspace not found",
        ),
    ];
    for (body, message) in cases {
        let reply = api.call("POST", "/workspaces", Some(body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.json, json!({"error": message}), "{body}");
    }
    let reply = send_raw(&api.app, "POST", "/workspaces", b"not json".to_vec()).await;
    assert_eq!(reply.json, json!({"error": "invalid workspace payload"}));
    let listed = api.call("GET", "/workspaces", None).await;
    assert_eq!(
        listed.text, "[]",
        "nothing was created by a refused request"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_with_workspace_dir_access_and_poll(db: PgPool) {
    let api = Api::new(db.clone());
    let reply = api
        .call(
            "POST",
            "/workspaces",
            Some(json!({"name": "dir", "workspace_dir": "/home/me/proj",
                        "workspace_access": "read_write", "delivery_mode": "poll",
                        "max_concurrent_tasks": 4, "budget_limit": 500})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["workspace_access"], "read_write");
    let listed = api.call("GET", "/workspaces", None).await;
    let row = &listed.json[0];
    assert_eq!(row["workspace_dir"], "/home/me/proj");
    assert_eq!(row["max_concurrent_tasks"], 4);
    assert_eq!(row["budget_limit"], 500);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_takes_runtime_and_model_from_the_template(db: PgPool) {
    let api = Api::new(db.clone());
    let template = api.dir.path().join("configs").join("hermes-tpl");
    std::fs::create_dir_all(&template).unwrap();
    std::fs::write(
        template.join("config.yaml"),
        "name: Hermes\nruntime: hermes\nmodel: legacy/top\nruntime_config:\n  model: minimax/MiniMax-M2.7\n  other: 1\n",
    )
    .unwrap();
    std::fs::write(template.join("prompt.md"), "hello").unwrap();
    let id = api
        .create(json!({"name": "from template", "template": "hermes-tpl"}))
        .await;
    let get = api.call("GET", &format!("/workspaces/{id}"), None).await;
    assert_eq!(get.json["runtime"], "hermes");
    let model = api
        .call("GET", &format!("/workspaces/{id}/model"), None)
        .await;
    assert_eq!(
        model.json,
        json!({"model": "minimax/MiniMax-M2.7", "source": "workspace_secrets"})
    );
    let provider = api
        .call("GET", &format!("/workspaces/{id}/provider"), None)
        .await;
    assert_eq!(
        provider.json,
        json!({"provider": "minimax", "source": "workspace_secrets"})
    );
    // The template's files were copied into the workspace's local configs.
    let seeded = api
        .dir
        .path()
        .join("workspaces")
        .join(id.to_string())
        .join("configs/prompt.md");
    assert_eq!(std::fs::read_to_string(seeded).unwrap(), "hello");

    // A caller's model wins over the template's.
    let id = api
        .create(json!({"name": "override", "template": "hermes-tpl", "model": "anthropic/claude"}))
        .await;
    let model = api
        .call("GET", &format!("/workspaces/{id}/model"), None)
        .await;
    assert_eq!(model.json["model"], "anthropic/claude");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_stores_secrets_encrypted_in_the_same_transaction(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut services = test_services(db.clone(), test_config(dir.path()));
    services.crypto = std::sync::Arc::new(store::crypto::Crypto::from_key(&[9u8; 32]));
    let state = api::AppState::new(services);
    let app = app(state);
    let body = json!({"name": "with secrets", "secrets": {"OPENAI_API_KEY": "sk-123"}});
    let reply = send(&app, "POST", "/workspaces", Some(&body)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let (stored, version): (Vec<u8>, i32) = sqlx::query_as(
        "SELECT encrypted_value, encryption_version FROM workspace_secrets WHERE key = 'OPENAI_API_KEY'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(version, 1);
    assert!(
        !stored.windows(6).any(|w| w == b"sk-123"),
        "stored in plaintext"
    );

    // A failing create leaves no secret behind: the duplicate name rolls everything back.
    let again = json!({"name": "with secrets", "secrets": {"OTHER": "x"}});
    let reply = send(&app, "POST", "/workspaces", Some(&again)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_secrets WHERE key = 'OTHER'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(others, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn external_workspaces_come_online_or_await_their_agent(db: PgPool) {
    let api = Api::new(db.clone());
    let body = json!({"name": "ext", "external": true, "url": "https://agent.example.com"});
    let reply = api.call("POST", "/workspaces", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json["status"], "online");
    assert_eq!(reply.json["external"], true);
    assert!(reply.json.get("connection").is_none());

    let body = json!({"name": "ext2", "runtime": "external"});
    let reply = send_with(
        &api.app,
        "POST",
        "/workspaces",
        &[("host", "ws.example:8080")],
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json["status"], "awaiting_agent");
    let connection = &reply.json["connection"];
    let id = reply.json["id"].as_str().unwrap();
    assert_eq!(connection["workspace_id"], id);
    assert_eq!(connection["platform_url"], "http://ws.example:8080");
    assert_eq!(
        connection["registry_endpoint"],
        "http://ws.example:8080/registry/register"
    );
    let token = connection["auth_token"].as_str().unwrap();
    assert_eq!(token.len(), 43);
    // The minted token is the workspace's own.
    let owner = store::tokens::workspace_of_token(&db, token).await.unwrap();
    assert_eq!(owner, Some(id.parse().unwrap()));
    let get = api.call("GET", &format!("/workspaces/{id}"), None).await;
    assert_eq!(get.json["runtime"], "external");
    assert_eq!(get.json["status"], "awaiting_agent");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn duplicate_sibling_names_conflict_on_create_and_rename(db: PgPool) {
    let api = Api::new(db);
    let duplicate =
        json!({"error": "a workspace with this name already exists under the same parent"});
    let root = api.create(json!({"name": "team"})).await;
    let reply = api
        .call("POST", "/workspaces", Some(json!({"name": "team"})))
        .await;
    assert_eq!(
        (reply.status, &reply.json),
        (StatusCode::CONFLICT, &duplicate)
    );

    // The same name under another parent is fine; twice under it is not.
    api.create(json!({"name": "team", "parent_id": root})).await;
    let reply = api
        .call(
            "POST",
            "/workspaces",
            Some(json!({"name": "team", "parent_id": root})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    let other = api.create(json!({"name": "other"})).await;
    let reply = api
        .call(
            "PATCH",
            &format!("/workspaces/{other}"),
            Some(json!({"name": "team"})),
        )
        .await;
    assert_eq!(
        (reply.status, &reply.json),
        (StatusCode::CONFLICT, &duplicate)
    );
    let get = api.call("GET", &format!("/workspaces/{other}"), None).await;
    assert_eq!(
        get.json["name"], "other",
        "a refused rename changes nothing"
    );

    // A removed workspace no longer blocks its name.
    let reply = api
        .call("DELETE", &format!("/workspaces/{other}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    api.create(json!({"name": "other"})).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn fifty_concurrent_creates_of_one_name_give_one_201(db: PgPool) {
    let api = Api::new(db.clone());
    let parent = api.create(json!({"name": "parent"})).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = api.app.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": "racer", "parent_id": parent});
            send(&app, "POST", "/workspaces", Some(&body)).await.status
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, conflicts), (1, 49));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces WHERE name = 'racer'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn get_projects_the_public_fields(db: PgPool) {
    let api = Api::new(db.clone());
    let id = api
        .create(
            json!({"name": "Echo Agent", "role": "helper", "tier": 1, "budget_limit": 100,
                       "canvas": {"x": 100, "y": 200.5}}),
        )
        .await;
    sqlx::query("UPDATE workspaces SET current_task = 'secret task', last_sample_error = 'boom' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let reply = api.call("GET", &format!("/workspaces/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text.contains(r#""name":"Echo Agent""#));
    assert!(reply.text.contains(r#""agent_card":null"#));
    assert!(
        reply.text.contains(r#""x":100,"y":200.5"#),
        "{}",
        reply.text
    );
    assert!(reply.text.contains(r#""last_error_rate":0,"#));
    assert!(reply.text.contains(r#""last_outbound_at":null"#));
    let object = reply.json.as_object().unwrap();
    for stripped in [
        "budget_limit",
        "monthly_spend",
        "current_task",
        "last_sample_error",
        "workspace_dir",
    ] {
        assert!(!object.contains_key(stripped), "{stripped} leaked");
    }
    let keys: Vec<&String> = object.keys().collect();
    let expected = [
        "active_tasks",
        "agent_card",
        "collapsed",
        "id",
        "last_error_rate",
        "last_outbound_at",
        "max_concurrent_tasks",
        "name",
        "parent_id",
        "role",
        "runtime",
        "status",
        "tier",
        "uptime_seconds",
        "url",
        "x",
        "y",
    ];
    assert_eq!(keys, expected);
    assert_eq!(reply.json["role"], "helper");
    assert_eq!(reply.json["url"], "");
    assert_eq!(reply.json["tier"], 1);

    let reply = api.call("GET", "/workspaces/not-a-uuid", None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid workspace ID"})
        )
    );
    let reply = api
        .call("GET", &format!("/workspaces/{}", Uuid::new_v4()), None)
        .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "workspace not found"})
        )
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn list_has_the_full_projection_in_creation_order(db: PgPool) {
    let api = Api::new(db.clone());
    let first = api
        .create(json!({"name": "first", "budget_limit": 7}))
        .await;
    let second = api
        .create(json!({"name": "second", "parent_id": first}))
        .await;
    sqlx::query("UPDATE workspaces SET created_at = now() + interval '1 minute' WHERE id = $1")
        .bind(first)
        .execute(&db)
        .await
        .unwrap();
    let reply = api.call("GET", "/workspaces", None).await;
    let rows = reply.json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], second.to_string());
    assert_eq!(rows[0]["parent_id"], first.to_string());
    assert_eq!(rows[1]["budget_limit"], 7);
    assert_eq!(rows[1]["parent_id"], Value::Null);
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    let expected = [
        "active_tasks",
        "agent_card",
        "budget_limit",
        "collapsed",
        "current_task",
        "id",
        "last_error_rate",
        "last_sample_error",
        "max_concurrent_tasks",
        "monthly_spend",
        "name",
        "parent_id",
        "role",
        "runtime",
        "status",
        "tier",
        "uptime_seconds",
        "url",
        "workspace_dir",
        "x",
        "y",
    ];
    assert_eq!(keys, expected);
    assert_eq!(rows[0]["current_task"], "");
    assert_eq!(rows[0]["role"], Value::Null);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn patch_updates_every_key_in_one_transaction(db: PgPool) {
    let api = Api::new(db.clone());
    let parent = api.create(json!({"name": "parent"})).await;
    let id = api.create(json!({"name": "Echo Agent", "role": "r"})).await;
    let url = format!("/workspaces/{id}");

    let reply = api
        .call("PATCH", &url, Some(json!({"x": 100, "y": 200})))
        .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::OK, r#"{"status":"updated"}"#)
    );
    let get = api.call("GET", &url, None).await;
    assert!(
        get.text.contains(r#""x":100"#) && get.text.contains(r#""y":200"#),
        "{}",
        get.text
    );

    let reply = api.call("PATCH", &url, Some(json!({"x": 5}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        api.call("GET", &url, None).await.json["x"],
        100,
        "x alone does not move"
    );

    let body = json!({"name": "Echo Agent v2", "role": null, "tier": 2, "runtime": "hermes",
                      "collapsed": true, "parent_id": parent, "unknown": 1, "budget_limit": 9});
    let reply = api.call("PATCH", &url, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let get = api.call("GET", &url, None).await;
    assert_eq!(get.json["name"], "Echo Agent v2");
    assert_eq!(get.json["role"], Value::Null);
    assert_eq!(get.json["tier"], 2);
    assert_eq!(get.json["runtime"], "hermes");
    assert_eq!(get.json["collapsed"], true);
    assert_eq!(get.json["parent_id"], parent.to_string());
    let budget: Option<i64> =
        sqlx::query_scalar("SELECT budget_limit FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(budget, None, "budget_limit is not patchable here");

    let reply = api
        .call("PATCH", &url, Some(json!({"workspace_dir": "/srv/ws"})))
        .await;
    assert_eq!(
        reply.json,
        json!({"status": "updated", "needs_restart": true})
    );

    // One transaction: a failing key leaves the others unchanged.
    let reply = api
        .call(
            "PATCH",
            &url,
            Some(json!({"tier": 4, "parent_id": Uuid::new_v4()})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "parent workspace not found"})
        )
    );
    assert_eq!(api.call("GET", &url, None).await.json["tier"], 2);

    let reply = api
        .call(
            "PATCH",
            &format!("/workspaces/{parent}"),
            Some(json!({"parent_id": id})),
        )
        .await;
    assert_eq!(
        reply.json,
        json!({"error": "parent_id would create a cycle"})
    );
    let reply = api
        .call("PATCH", &url, Some(json!({"parent_id": null})))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        api.call("GET", &url, None).await.json["parent_id"],
        Value::Null
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn patch_refuses_bad_input_with_specific_messages(db: PgPool) {
    let api = Api::new(db);
    let id = api.create(json!({"name": "p"})).await;
    let url = format!("/workspaces/{id}");
    let cases = [
        (
            json!({"name": "a\nb"}),
            "name must not contain newline characters",
        ),
        (json!({"role": "a>b"}), "role contains invalid characters"),
        (
            json!({"name": "n".repeat(256)}),
            "name must be at most 255 characters",
        ),
        (
            json!({"runtime": "r\r"}),
            "runtime must not contain newline characters",
        ),
        (
            json!({"workspace_dir": "/proc/1"}),
            "invalid workspace directory",
        ),
        (json!({"tier": "high"}), "tier must be an integer"),
        (json!([1, 2]), "invalid request body"),
    ];
    for (body, message) in cases {
        let reply = api.call("PATCH", &url, Some(body.clone())).await;
        assert_eq!(
            (reply.status, reply.json),
            (StatusCode::BAD_REQUEST, json!({"error": message})),
            "{body}"
        );
    }
    let reply = send_raw(&api.app, "PATCH", &url, b"{".to_vec()).await;
    assert_eq!(reply.json, json!({"error": "invalid request body"}));
    let reply = api.call("PATCH", "/workspaces/nope", Some(json!({}))).await;
    assert_eq!(reply.json, json!({"error": "invalid workspace ID"}));
    // An unknown workspace is 404 whatever the patch: the layout, the row alone (one statement),
    // nothing at all.
    let unknown = format!("/workspaces/{}", Uuid::new_v4());
    for body in [json!({"x": 1, "y": 2}), json!({"role": "r"}), json!({})] {
        let reply = api.call("PATCH", &unknown, Some(body.clone())).await;
        assert_eq!(
            (reply.status, reply.json),
            (
                StatusCode::NOT_FOUND,
                json!({"error": "workspace not found"})
            ),
            "{body}"
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn delete_asks_for_confirmation_then_cascades(db: PgPool) {
    let api = Api::new(db.clone());
    let root = api.create(json!({"name": "root"})).await;
    let child = api
        .create(json!({"name": "child", "parent_id": root}))
        .await;
    let grandchild = api
        .create(json!({"name": "grandchild", "parent_id": child}))
        .await;
    let child_token = store::tokens::mint_workspace_token(&db, child)
        .await
        .unwrap();

    let reply = api
        .call("DELETE", &format!("/workspaces/{root}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.json,
        json!({"status": "confirmation_required",
               "message": "This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete.",
               "children": [{"id": child, "name": "child"}], "children_count": 1})
    );

    let reply = api
        .call("DELETE", &format!("/workspaces/{root}?confirm=true"), None)
        .await;
    assert_eq!(reply.text, r#"{"cascade_deleted":2,"status":"removed"}"#);
    for id in [root, child, grandchild] {
        let get = api.call("GET", &format!("/workspaces/{id}"), None).await;
        assert_eq!(get.status, StatusCode::GONE);
    }
    assert_eq!(api.call("GET", "/workspaces", None).await.text, "[]");
    assert_eq!(
        store::tokens::workspace_of_token(&db, &child_token)
            .await
            .unwrap(),
        None
    );
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workspace_auth_tokens WHERE revoked_at IS NULL")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(live, 0);
    let layouts: i64 = sqlx::query_scalar("SELECT count(*) FROM canvas_layouts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(layouts, 0);
    assert_eq!(
        events_of(&db, root, "WORKSPACE_REMOVED").await,
        vec![json!({"cascade_deleted": 2})]
    );
    assert_eq!(
        events_of(&db, grandchild, "WORKSPACE_REMOVED").await.len(),
        1
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn get_of_a_removed_workspace_is_410_unless_asked(db: PgPool) {
    let api = Api::new(db);
    let id = api.create(json!({"name": "gone"})).await;
    api.call("DELETE", &format!("/workspaces/{id}"), None).await;
    let reply = api.call("GET", &format!("/workspaces/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::GONE);
    assert_eq!(reply.json["error"], "workspace removed");
    assert_eq!(reply.json["id"], id.to_string());
    assert_eq!(
        reply.json["hint"],
        "Regenerate workspace + token from the canvas → Tokens tab"
    );
    assert!(reply.json["removed_at"].as_str().unwrap().ends_with('Z'));
    let reply = api
        .call(
            "GET",
            &format!("/workspaces/{id}?include_removed=true"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["status"], "removed");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn delete_of_an_unknown_workspace_is_404_and_purge_hard_deletes(db: PgPool) {
    let api = Api::new(db.clone());
    let reply = api
        .call("DELETE", &format!("/workspaces/{}", Uuid::new_v4()), None)
        .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "workspace not found"})
        )
    );
    let reply = api.call("DELETE", "/workspaces/xyz", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let root = api
        .create(json!({"name": "root", "secrets": {"K": "v"}, "model": "anthropic/x"}))
        .await;
    let child = api
        .create(json!({"name": "child", "parent_id": root, "secrets": {"K": "v"}}))
        .await;
    store::tokens::mint_workspace_token(&db, child)
        .await
        .unwrap();
    store::tokens::mint_org_token(&db, "org", Some(root))
        .await
        .unwrap();
    let reply = api
        .call(
            "DELETE",
            &format!("/workspaces/{root}?confirm=true&purge=true"),
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::OK, r#"{"cascade_deleted":1,"status":"purged"}"#)
    );
    for table in [
        "workspaces",
        "workspace_secrets",
        "workspace_auth_tokens",
        "canvas_layouts",
    ] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(count, 0, "{table}");
    }
    let reply = api
        .call(
            "GET",
            &format!("/workspaces/{root}?include_removed=true"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn state_reports_status_paused_and_deleted(db: PgPool) {
    let api = Api::new(db.clone());
    let id = api.create(json!({"name": "s"})).await;
    let url = format!("/workspaces/{id}/state");
    let reply = api.call("GET", &url, None).await;
    assert_eq!(
        reply.json,
        json!({"workspace_id": id, "status": "provisioning", "paused": false, "deleted": false})
    );
    sqlx::query("UPDATE workspaces SET status = 'paused' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(api.call("GET", &url, None).await.json["paused"], true);
    api.call("DELETE", &format!("/workspaces/{id}"), None).await;
    let reply = api.call("GET", &url, None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"workspace_id": id, "status": "removed", "deleted": true})
        )
    );
    let missing = Uuid::new_v4();
    let reply = api
        .call("GET", &format!("/workspaces/{missing}/state"), None)
        .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"workspace_id": missing, "deleted": true})
        )
    );
    let reply = api.call("GET", "/workspaces/bad/state", None).await;
    assert_eq!(reply.json, json!({"error": "invalid workspace ID"}));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn instance_attachment_is_validated(db: PgPool) {
    let api = Api::new(db.clone());
    let id = api.create(json!({"name": "ec2"})).await;
    let url = format!("/admin/workspaces/{id}/instance");
    let reply = api
        .call(
            "PUT",
            &url,
            Some(json!({"instance_id": "i-0123456789abcdef0"})),
        )
        .await;
    assert_eq!(
        reply.text,
        r#"{"instance_id":"i-0123456789abcdef0","status":"updated"}"#
    );
    let stored = store::file_targets::lookup(&db, id).await.unwrap().unwrap();
    assert_eq!(stored.instance_id, "i-0123456789abcdef0");
    for bad in [
        json!({"instance_id": "i-xyz"}),
        json!({"instance_id": 5}),
        json!({}),
        json!({"instance_id": "i-0123ABCD"}),
    ] {
        let reply = api.call("PUT", &url, Some(bad)).await;
        assert_eq!(
            (reply.status, reply.json),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid instance_id"})
            )
        );
    }
    let reply = api
        .call("PUT", &url, Some(json!({"instance_id": null})))
        .await;
    assert_eq!(reply.text, r#"{"instance_id":null,"status":"updated"}"#);
    assert_eq!(
        store::file_targets::lookup(&db, id)
            .await
            .unwrap()
            .unwrap()
            .instance_id,
        ""
    );
    let reply = api
        .call(
            "PUT",
            &format!("/admin/workspaces/{}/instance", Uuid::new_v4()),
            Some(json!({"instance_id": "i-0123abcd"})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "workspace not found"})
        )
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn liveness_lists_ticked_subsystems(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let state = test_state(db, test_config(dir.path()));
    let liveness = state.liveness.clone();
    let app = app(state);
    let reply = send(&app, "GET", "/admin/liveness", None).await;
    assert_eq!(reply.text, r#"{"subsystems":{}}"#);
    liveness.tick("scheduler");
    let reply = send(&app, "GET", "/admin/liveness", None).await;
    let entry = &reply.json["subsystems"]["scheduler"];
    assert_eq!(entry["seconds_ago"], 0);
    assert!(entry["last_tick_at"].as_str().unwrap().ends_with('Z'));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn test_tokens_follow_their_gate(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(db.clone());
    let id = api.create(json!({"name": "tt"})).await;
    let url = format!("/admin/workspaces/{id}/test-token");

    let reply = api.call("GET", &url, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["workspace_id"], id.to_string());
    let token = reply.json["auth_token"].as_str().unwrap();
    assert_eq!(
        store::tokens::workspace_of_token(&db, token).await.unwrap(),
        Some(id)
    );
    let reply = api
        .call(
            "GET",
            &format!("/admin/workspaces/{}/test-token", Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "workspace not found"})
        )
    );

    // A removed workspace's row still exists: the original minted for it
    // (`handlers/admin_test_token.go` looks the id up with no status condition).
    let reply = api.call("DELETE", &format!("/workspaces/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = api.call("GET", &url, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["workspace_id"], id.to_string());

    let production = |enable: bool, admin: Option<&str>| {
        let mut config = test_config(dir.path());
        config.molecule_env = "production".into();
        config.enable_test_tokens = enable;
        config.admin_token = admin.map(Into::into);
        app(test_state(db.clone(), config))
    };
    let reply = send(&production(false, None), "GET", &url, None).await;
    assert_eq!(
        (reply.status, reply.json),
        (StatusCode::NOT_FOUND, json!({"error": "not found"}))
    );
    let reply = send(&production(true, None), "GET", &url, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let gated = production(true, Some("admin-secret"));
    let reply = send(&gated, "GET", &url, None).await;
    assert_eq!(
        (reply.status, reply.json),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "admin auth required"})
        )
    );
    let reply = send_with(
        &gated,
        "GET",
        &url,
        &[("authorization", "Bearer admin-secret")],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // `prod` (not `production`) keeps it on, like the original.
    let mut config = test_config(dir.path());
    config.molecule_env = "prod".into();
    assert_eq!(
        send(&app(test_state(db.clone(), config)), "GET", &url, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn shared_context_and_unknown_routes_are_404(db: PgPool) {
    let api = Api::new(db);
    let id = api.create(json!({"name": "x"})).await;
    let reply = api
        .call("GET", &format!("/workspaces/{id}/shared-context"), None)
        .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found")
    );
    let reply = api.call("POST", "/health", None).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a wrong method is a 404, like gin"
    );
}

/// The create behaviours clients rely on, as the original had them: an empty `template` is
/// absent, `url` is kept only for external workspaces, the tenant default tier is 4, an
/// external create records its first status, and a workspace without a template gets the
/// original provisioner's generated `config.yaml`.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_matches_the_original_where_clients_rely_on_it(db: PgPool) {
    let api = Api::new(db.clone());
    let id = api
        .create(
            json!({"name": "plain", "template": "", "url": "http://10.0.0.9:8000",
                       "role": "says \"hi\"", "model": "tencent/hunyuan"}),
        )
        .await;
    let get = api.call("GET", &format!("/workspaces/{id}"), None).await;
    assert_eq!(
        (get.json["url"].as_str(), get.json["tier"].as_i64()),
        (Some(""), Some(3))
    );
    let config = api
        .call("GET", &format!("/workspaces/{id}/files/config.yaml"), None)
        .await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.text);
    assert_eq!(
        config.json["content"],
        "name: \"plain\"\ndescription: \"says \\\"hi\\\"\"\nversion: 1.0.0\ntier: 3\n\
         runtime: langgraph\nmodel: \"tencent/hunyuan\"\n"
    );
    let provider = api
        .call("GET", &format!("/workspaces/{id}/provider"), None)
        .await;
    assert_eq!(
        provider.json["provider"], "tencent-tokenhub",
        "{}",
        provider.text
    );

    let claude = api
        .create(json!({"name": "cc", "runtime": "claude-code", "tier": 2}))
        .await;
    let config = api
        .call(
            "GET",
            &format!("/workspaces/{claude}/files/config.yaml"),
            None,
        )
        .await;
    assert_eq!(
        config.json["content"],
        "name: \"cc\"\ndescription: \"\"\nversion: 1.0.0\ntier: 2\nruntime: claude-code\n\
         model: \"sonnet\"\nruntime_config:\n  timeout: 0\n"
    );

    let online = api
        .create(json!({"name": "ext", "external": true, "url": "https://agent.example.com"}))
        .await;
    let announced = |name: &str| vec![json!({"name": name, "external": true})];
    assert_eq!(
        events_of(&db, online, "WORKSPACE_ONLINE").await,
        announced("ext")
    );
    let waiting = api
        .create(json!({"name": "ext2", "runtime": "external"}))
        .await;
    assert_eq!(
        events_of(&db, waiting, "WORKSPACE_AWAITING_AGENT").await,
        announced("ext2")
    );

    let mut config = test_config(api.dir.path());
    config.org_id = Some("org-1".into());
    let tenant = app(test_state(db.clone(), config));
    let org = [("x-molecule-org-id", "org-1")];
    let body = json!({"name": "t"});
    let reply = send_with(&tenant, "POST", "/workspaces", &org, Some(&body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap();
    let get = send_with(&tenant, "GET", &format!("/workspaces/{id}"), &org, None).await;
    assert_eq!(get.json["tier"], 4, "a tenant's default tier");
}

/// The PATCH side of create's parity (`handlers/workspace_crud.go` Update at 624ef4d0): `url`,
/// `model` and `template` are not PATCH keys there (ignored, so a PATCH never gives a
/// non-external workspace a URL), and the existence check has no status condition (a removed
/// workspace's row is still updated).
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn patch_ignores_keys_the_original_never_patched(db: PgPool) {
    let api = Api::new(db.clone());
    let id = api
        .create(json!({"name": "p", "model": "anthropic:claude-sonnet-4-5"}))
        .await;
    let url = format!("/workspaces/{id}");
    let body = json!({"url": "https://agent.example.com", "model": "lm-studio/x",
                      "template": "", "tier": 2});
    let reply = api.call("PATCH", &url, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let get = api.call("GET", &url, None).await;
    assert_eq!(
        get.json["url"], "",
        "no URL for a workspace that is not external"
    );
    assert_eq!(get.json["tier"], 2);
    let model = api.call("GET", &format!("{url}/model"), None).await;
    assert_eq!(model.json["model"], "anthropic:claude-sonnet-4-5");

    let reply = api.call("DELETE", &url, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = api.call("PATCH", &url, Some(json!({"tier": 3}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
