//! External workspaces: the connection block of `POST /workspaces` (all twelve keys, the platform
//! URL rules), its re-show without a token, rotation, and the curl snippet run for real against
//! this server's own `/registry/register`.

use crate::common::{app, insert_workspace, send, send_with, test_config, test_state};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

const KEYS: [&str; 12] = [
    "workspace_id",
    "platform_url",
    "auth_token",
    "registry_endpoint",
    "heartbeat_endpoint",
    "curl_register_template",
    "python_snippet",
    "claude_code_channel_snippet",
    "universal_mcp_snippet",
    "hermes_channel_snippet",
    "codex_snippet",
    "openclaw_snippet",
];
/// The canvas's replacement of the curl snippet's token line (`ExternalConnectModal.tsx`).
const CURL_PLACEHOLDER: &str = r#"WORKSPACE_AUTH_TOKEN="<paste from create response>""#;

async fn create_external(app: &axum::Router, headers: &[(&str, &str)]) -> Value {
    let body = json!({"name": format!("ext-{}", uuid::Uuid::new_v4()), "runtime": "external"});
    let reply = send_with(app, "POST", "/workspaces", headers, Some(&body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["status"], "awaiting_agent");
    reply.json
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn create_answers_the_whole_connection_block(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let created = create_external(&app, &[("host", "platform.internal:8080")]).await;
    let connection = created["connection"].as_object().unwrap();
    let mut keys: Vec<&str> = connection.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert!(connection.values().all(Value::is_string));
    let id = created["id"].as_str().unwrap();
    assert_eq!(connection["workspace_id"], id);
    assert_eq!(connection["platform_url"], "http://platform.internal:8080");
    assert_eq!(
        connection["registry_endpoint"],
        "http://platform.internal:8080/registry/register"
    );
    assert_eq!(connection["auth_token"].as_str().unwrap().len(), 43);
    let curl = connection["curl_register_template"].as_str().unwrap();
    assert!(curl.contains(CURL_PLACEHOLDER));
    assert!(curl.contains(&format!("\"id\": \"{id}\"")));
    assert!(curl.contains("-H \"Origin: http://platform.internal:8080\""));

    // Forwarded headers name the public URL; EXTERNAL_PLATFORM_URL overrides everything.
    let forwarded = create_external(
        &app,
        &[
            ("host", "inner:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "edge.example"),
        ],
    )
    .await;
    assert_eq!(
        forwarded["connection"]["platform_url"],
        "https://edge.example"
    );
    let mut config = test_config(dir.path());
    config.external_platform_url = Some("https://public.example/".into());
    let configured = app_with(db.clone(), config);
    let created = create_external(&configured, &[("host", "inner:8080")]).await;
    assert_eq!(
        created["connection"]["platform_url"],
        "https://public.example"
    );
    assert_eq!(
        created["connection"]["heartbeat_endpoint"],
        "https://public.example/registry/heartbeat"
    );
}

fn app_with(db: PgPool, config: api::ApiConfig) -> axum::Router {
    app(test_state(db, config))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_block_is_reshown_without_a_token_and_rotation_replaces_every_token(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.molecule_env = String::new();
    config.admin_token = Some("ext-admin".into());
    let app = app(test_state(db.clone(), config));
    let admin = [("authorization", "Bearer ext-admin"), ("host", "p:1")];
    let created = create_external(&app, &admin).await;
    let id = created["id"].as_str().unwrap().to_string();
    let first = created["connection"]["auth_token"]
        .as_str()
        .unwrap()
        .to_string();
    let first_auth = format!("Bearer {first}");

    let url = format!("/workspaces/{id}/external/connection");
    let shown = send_with(
        &app,
        "GET",
        &url,
        &[("authorization", &first_auth), ("host", "p:1")],
        None,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    let mut expected = created["connection"].clone();
    expected["auth_token"] = json!("");
    assert_eq!(shown.json["connection"], expected);

    let rotated = send_with(
        &app,
        "POST",
        &format!("/workspaces/{id}/external/rotate"),
        &[("authorization", &first_auth), ("host", "p:1")],
        Some(&json!({})),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let second = rotated.json["connection"]["auth_token"].as_str().unwrap();
    assert_eq!(second.len(), 43);
    assert_ne!(second, first);
    let refused = send_with(&app, "GET", &url, &[("authorization", &first_auth)], None).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "the old token is revoked"
    );
    let second_auth = format!("Bearer {second}");
    let ok = send_with(&app, "GET", &url, &[("authorization", &second_auth)], None).await;
    assert_eq!(ok.status, StatusCode::OK);
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM structure_events WHERE event_type = 'EXTERNAL_CREDENTIALS_ROTATED'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(events, 1);
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM workspace_auth_tokens WHERE revoked_at IS NULL AND workspace_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(live, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn other_runtimes_and_unknown_workspaces_are_refused(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let id = insert_workspace(&db, "w", "langgraph", None).await;
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/external/connection"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json,
        json!({"error": "connection payload is only valid for runtime=external workspaces", "runtime": "langgraph"})
    );
    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{id}/external/rotate"),
        None,
    )
    .await;
    assert_eq!(
        reply.json,
        json!({"error": "rotate is only valid for runtime=external workspaces", "runtime": "langgraph",
               "hint": "use POST /workspaces/:id/restart for non-external runtimes"})
    );
    let ghost = uuid::Uuid::new_v4();
    let reply = send(
        &app,
        "POST",
        &format!("/workspaces/{ghost}/external/rotate"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json, json!({"error": "workspace not found"}));
}

/// The curl snippet, with the token filled in as the canvas does and the agent URL set, run by a
/// real shell against this server: the server's own `/registry/register` accepts it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_curl_snippet_registers_against_this_server(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(test_state(db.clone(), test_config(dir.path())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("http://{address}/workspaces"))
        .json(&json!({"name": "curl-agent", "runtime": "external"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connection = &created["connection"];
    let token = connection["auth_token"].as_str().unwrap();
    let script = connection["curl_register_template"]
        .as_str()
        .unwrap()
        .replacen(
            CURL_PLACEHOLDER,
            &format!("WORKSPACE_AUTH_TOKEN=\"{token}\""),
            1,
        )
        .replace(
            "export AGENT_URL=\"https://your-agent.example.com\"",
            "export AGENT_URL=\"http://8.8.8.8:8000\"",
        );
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output(),
    )
    .await
    .expect("curl finished")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the snippet failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap()["status"],
        "registered"
    );
    let (status, url): (String, Option<String>) =
        sqlx::query_as("SELECT status::text, url FROM workspaces WHERE id = $1::uuid")
            .bind(created["id"].as_str().unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(status, "online");
    assert_eq!(url.as_deref(), Some("http://8.8.8.8:8000"));
    server.abort();
}
