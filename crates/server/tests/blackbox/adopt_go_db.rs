//! The real binary started on a database written by the Go original
//! (`tests/fixtures/go_schema.sql`) with the same `SECRETS_ENCRYPTION_KEY`: it adopts the schema
//! and every fixture row reads back through the API, secrets and tokens included.

use crate::harness::{TestDatabase, TestServer};
use serde_json::{Value, json};

/// The fixture's key and tokens (see the header of `tests/fixtures/go_schema.sql`).
const KEY: &str = "jVs8GWm7tzu8mSRJhBQAI9w4vqpYdJLcAwu1+VidMP4=";
const ALPHA_TOKEN: &str = "cw6TO56kPOIic30luGqKhQjQ7H4HyYfynHG8_gjbBcg";
const GAMMA_TOKEN: &str = "Ja2-rK_vyGe8GIGoi3CJV0zIA5hNWCDXbZfYvRHsK-E";
const ORG_TOKEN: &str = "qRk3C4cAHnuG1GKy_xlpN1DKRyJq9QhdmmNPsVvhmgU";
const ADMIN_TOKEN: &str = "adoption-admin-token";

const ALPHA: &str = "11111111-1111-4111-8111-111111111111";
const BETA: &str = "22222222-2222-4222-8222-222222222222";
const GAMMA: &str = "33333333-3333-4333-8333-333333333333";

async fn go_database() -> TestDatabase {
    let database = TestDatabase::create().await.unwrap();
    let pool = database.pool().await;
    sqlx::raw_sql(include_str!("../../../../tests/fixtures/go_schema.sql"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    database
}

async fn start_on(database: &TestDatabase) -> TestServer {
    TestServer::builder()
        .database_url(&database.url)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SECRETS_ENCRYPTION_KEY", KEY)
        .start()
        .await
}

/// The fields of `row` named in `expected`, for comparing a projection that may carry more.
fn fields(row: &Value, expected: &Value) -> Value {
    let keys = expected.as_object().unwrap().keys();
    Value::Object(keys.map(|key| (key.clone(), row[key].clone())).collect())
}

#[tokio::test]
async fn workspaces_and_layouts_read_back_through_the_admin_list() {
    let database = go_database().await;
    let server = start_on(&database).await;

    let (status, list) = server
        .request("GET", "/workspaces", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{list}");
    let rows = list.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 2, "removed Gamma is not listed: {list}");

    let alpha = json!({
        "id": ALPHA, "name": "Alpha", "role": "lead", "tier": 3, "status": "online",
        "url": "http://10.0.1.15:8000", "parent_id": null, "active_tasks": 2,
        "max_concurrent_tasks": 2, "last_error_rate": 0.25, "last_sample_error": "",
        "uptime_seconds": 120, "current_task": "reviewing the plan", "runtime": "claude-code",
        "workspace_dir": null, "monthly_spend": 120, "budget_limit": 5000,
        "x": 120.5, "y": 80, "collapsed": false,
        "agent_card": {"name": "alpha", "skills": [{"id": "plan", "name": "Planning"}]},
    });
    let beta = json!({
        "id": BETA, "name": "Beta", "role": "researcher", "tier": 2, "status": "awaiting_agent",
        "url": "", "parent_id": ALPHA, "active_tasks": 0, "max_concurrent_tasks": 1,
        "current_task": "", "runtime": "external", "monthly_spend": 0, "budget_limit": null,
        "x": 300, "y": 240, "collapsed": true, "agent_card": null,
    });
    assert_eq!(
        fields(&rows[0], &alpha),
        alpha,
        "ordered by created_at: Alpha first"
    );
    assert_eq!(fields(&rows[1], &beta), beta);

    let (status, body) = server.get(&format!("/workspaces/{GAMMA}")).await;
    assert_eq!(status, 410, "a removed Go workspace stays removed: {body}");
}

#[tokio::test]
async fn secrets_of_both_encryption_versions_decrypt_and_tokens_authenticate() {
    let database = go_database().await;
    let server = start_on(&database).await;

    let cases = [
        // Alpha's own workspace token (stored by the Go server as its sha256).
        (ALPHA, "model", ALPHA_TOKEN, "minimax/MiniMax-M2.7"), // encryption_version 1
        (ALPHA, "provider", ALPHA_TOKEN, "minimax"),           // encryption_version 0
        // The org token reaches every workspace of the organisation.
        (BETA, "model", ORG_TOKEN, "anthropic:claude-sonnet-4"), // version 0
        (BETA, "provider", ORG_TOKEN, "anthropic"),              // version 1
    ];
    for (workspace, field, token, value) in cases {
        let path = format!("/workspaces/{workspace}/{field}");
        let (status, body) = server.request("GET", &path, None, Some(token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            body,
            json!({field: value, "source": "workspace_secrets"}),
            "{path}"
        );
    }

    let (status, body) = server
        .request(
            "GET",
            &format!("/workspaces/{BETA}/model"),
            None,
            Some(ALPHA_TOKEN),
        )
        .await;
    assert_eq!(status, 401, "Alpha's token is bound to Alpha: {body}");
    let (status, body) = server
        .request(
            "GET",
            &format!("/workspaces/{GAMMA}/model"),
            None,
            Some(GAMMA_TOKEN),
        )
        .await;
    assert_eq!(status, 401, "a removed workspace's token is dead: {body}");
}

#[tokio::test]
async fn an_adopted_database_takes_writes() {
    let database = go_database().await;
    let server = start_on(&database).await;
    let path = format!("/workspaces/{ALPHA}/model");

    let (status, body) = server
        .request(
            "PUT",
            &path,
            Some(&json!({"model": "openai/gpt-5"})),
            Some(ALPHA_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.request("GET", &path, None, Some(ALPHA_TOKEN)).await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!({"model": "openai/gpt-5", "source": "workspace_secrets"})
        )
    );
}

#[tokio::test]
async fn the_go_events_read_back() {
    let database = go_database().await;
    let server = start_on(&database).await;

    let (status, events) = server
        .request("GET", "/events", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{events}");
    let seen: Vec<(String, String)> = events
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|event| {
            (
                event["event_type"].as_str().unwrap_or_default().to_string(),
                event["workspace_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for expected in [
        ("WORKSPACE_PROVISIONING", ALPHA),
        ("WORKSPACE_ONLINE", ALPHA),
        ("WORKSPACE_PROVISIONING", BETA),
        ("WORKSPACE_REMOVED", GAMMA),
    ] {
        assert!(
            seen.iter()
                .any(|(kind, id)| kind == expected.0 && id == expected.1),
            "{expected:?} missing from {events}"
        );
    }
}

#[tokio::test]
async fn the_server_refuses_a_go_database_missing_columns() {
    let database = go_database().await;
    let pool = database.pool().await;
    sqlx::raw_sql("ALTER TABLE workspace_secrets DROP COLUMN encryption_version")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let error = TestServer::builder()
        .database_url(&database.url)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SECRETS_ENCRYPTION_KEY", KEY)
        .try_start()
        .await
        .expect_err("an incompatible schema must stop the server");
    let message = format!("{error:#}");
    assert!(
        message.contains("workspace_secrets.encryption_version"),
        "{message}"
    );
}

/// The settings tables of the Go database (secrets of both scopes, workspace and org tokens, the
/// config document) read back through the settings routes, and an external workspace's
/// connection block is built for the adopted row.
#[tokio::test]
async fn the_go_settings_read_back_through_the_settings_routes() {
    let database = go_database().await;
    let server = start_on(&database).await;
    let admin = Some(ADMIN_TOKEN);

    let (status, list) = server
        .request("GET", &format!("/workspaces/{ALPHA}/secrets"), None, admin)
        .await;
    assert_eq!(status, 200, "{list}");
    let scoped: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["scope"].as_str().unwrap()))
        .collect();
    assert_eq!(
        scoped,
        [
            ("LLM_PROVIDER", "workspace"),
            ("MODEL_PROVIDER", "workspace"),
            ("OPENAI_API_KEY", "global")
        ]
    );
    // The agent's bundle: Go-encrypted (version 1) and plaintext-era (version 0) values alike.
    let (status, values) = server
        .request(
            "GET",
            &format!("/workspaces/{ALPHA}/secrets/values"),
            None,
            Some(ALPHA_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{values}");
    assert_eq!(
        values,
        json!({"MODEL_PROVIDER": "minimax/MiniMax-M2.7", "LLM_PROVIDER": "minimax",
               "OPENAI_API_KEY": "sk-global-fixture"})
    );
    let (_, global) = server
        .request("GET", "/settings/secrets", None, admin)
        .await;
    assert_eq!(global[0]["key"], "OPENAI_API_KEY");

    let (status, tokens) = server
        .request("GET", &format!("/workspaces/{ALPHA}/tokens"), None, admin)
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["count"], 1);
    assert_eq!(tokens["tokens"][0]["prefix"], "cw6TO56k");
    assert_eq!(tokens["tokens"][0]["created_at"], "2026-04-01T09:05:00Z");

    let (status, org) = server.request("GET", "/org/tokens", None, admin).await;
    assert_eq!(status, 200, "{org}");
    let token = &org["tokens"][0];
    assert_eq!(
        (
            &token["prefix"],
            &token["name"],
            &token["created_by"],
            &token["org_id"]
        ),
        (
            &json!("qRk3C4cA"),
            &json!("ci"),
            &json!("admin"),
            &json!(ALPHA)
        )
    );

    let (status, config) = server
        .request("GET", &format!("/workspaces/{ALPHA}/config"), None, admin)
        .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        config,
        json!({"data": {"theme": "dark", "limits": {"tasks": 4}}})
    );

    let (status, connection) = server
        .request(
            "GET",
            &format!("/workspaces/{BETA}/external/connection"),
            None,
            admin,
        )
        .await;
    assert_eq!(status, 200, "{connection}");
    assert_eq!(connection["connection"]["workspace_id"], BETA);
    assert_eq!(connection["connection"]["auth_token"], "");
}

/// The salt the fixture's audit rows are chained with.
const AUDIT_SALT: &str = "go-fixture-audit-salt";

#[tokio::test]
async fn the_go_panels_read_back_viewport_approvals_usage_and_audit() {
    let database = go_database().await;
    let server = TestServer::builder()
        .database_url(&database.url)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SECRETS_ENCRYPTION_KEY", KEY)
        .env("AUDIT_LEDGER_SALT", AUDIT_SALT)
        .start()
        .await;
    let admin = Some(ADMIN_TOKEN);

    let (status, viewport) = server.get("/canvas/viewport").await;
    assert_eq!(
        (status.as_u16(), viewport),
        (200, json!({"x": -40, "y": 12.5, "zoom": 0.8}))
    );

    let (status, pending) = server
        .request("GET", "/approvals/pending", None, admin)
        .await;
    assert_eq!(status, 200, "{pending}");
    let expected = json!([{
        "id": "44444444-4444-4444-8444-444444444444", "workspace_id": BETA,
        "workspace_name": "Beta", "action": "push to main", "reason": "release 1.2",
        "status": "pending",
    }]);
    let shown: Vec<Value> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|row| fields(row, &expected[0]))
        .collect();
    assert_eq!(Value::Array(shown), expected);
    let path = format!("/workspaces/{ALPHA}/approvals");
    let (status, history) = server.request("GET", &path, None, Some(ALPHA_TOKEN)).await;
    assert_eq!(status, 200, "{history}");
    let approved = json!({"id": "55555555-5555-4555-8555-555555555555", "task_id": "",
                          "action": "delete bucket", "status": "approved",
                          "decided_by": "human", "decided_at": "2026-04-20T10:00:05Z",
                          "created_at": "2026-04-20T10:00:00Z"});
    assert_eq!(fields(&history[0], &approved), approved);
    // A Go request is decided through the API like one of ours.
    let decide =
        format!("/workspaces/{BETA}/approvals/44444444-4444-4444-8444-444444444444/decide");
    let body = json!({"decision": "denied", "decided_by": "ops"});
    let (status, decided) = server.request("POST", &decide, Some(&body), admin).await;
    assert_eq!(status, 200, "{decided}");

    let path = format!("/workspaces/{ALPHA}/budget");
    let (status, budget) = server.request("GET", &path, None, Some(ALPHA_TOKEN)).await;
    assert_eq!(
        (status.as_u16(), budget),
        (
            200,
            json!({"budget_limit": 5000, "monthly_spend": 120, "budget_remaining": 4880})
        )
    );
    let path = format!("/workspaces/{ALPHA}/metrics");
    let (status, usage) = server.request("GET", &path, None, Some(ALPHA_TOKEN)).await;
    assert_eq!(status, 200, "{usage}");
    let today = json!({"input_tokens": 1500, "output_tokens": 300, "total_calls": 3,
                       "estimated_cost_usd": "0.009000"});
    assert_eq!(fields(&usage, &today), today);

    let path = format!("/workspaces/{ALPHA}/audit");
    let (status, audit) = server.request("GET", &path, None, Some(ALPHA_TOKEN)).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(
        (&audit["total"], &audit["chain_valid"]),
        (&json!(2), &json!(true)),
        "{audit}"
    );
    assert_eq!(
        audit["events"][0]["timestamp"],
        json!("2026-04-01T09:10:00.25Z")
    );
    assert_eq!(audit["events"][1]["model_used"], json!("claude-sonnet-4"));
}

#[tokio::test]
async fn the_go_memories_and_schedules_read_back() {
    let database = go_database().await;
    let server = start_on(&database).await;
    let get = |path: String| {
        let server = &server;
        async move {
            let (status, body) = server.request("GET", &path, None, Some(ALPHA_TOKEN)).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };

    let memories = get(format!("/workspaces/{ALPHA}/memories?q=deploy")).await;
    assert_eq!(
        memories,
        json!([{"id": "44444444-4444-4444-8444-444444444444", "workspace_id": ALPHA,
                "content": "the deploy runs on fridays", "scope": "LOCAL", "namespace": "ops",
                "created_at": "2026-04-10T09:00:00Z"}])
    );
    // Beta's TEAM memory shows in its root's Memory tab under the team namespace.
    let tab = get(format!(
        "/workspaces/{ALPHA}/v2/memories?namespace=team:{ALPHA}"
    ))
    .await;
    assert_eq!(tab["memories"][0]["content"], "beta found the flaky test");

    let kv = get(format!("/workspaces/{ALPHA}/memory/plan")).await;
    assert_eq!(
        kv,
        json!({"key": "plan", "value": {"step": 2}, "version": 3,
               "updated_at": "2026-04-12T09:00:00Z"})
    );

    let schedules = get(format!("/workspaces/{ALPHA}/schedules")).await;
    let expected = json!({
        "id": "66666666-6666-4666-8666-666666666666", "name": "daily report",
        "cron_expr": "0 9 * * *", "timezone": "Europe/Paris", "prompt": "write the report",
        "enabled": true, "last_run_at": "2026-04-30T07:00:00Z",
        "next_run_at": "2099-01-01T08:00:00Z", "run_count": 4, "last_status": "ok",
        "last_error": "", "source": "template"});
    assert_eq!(fields(&schedules[0], &expected), expected);
}

/// A purge on a database the Go server wrote: the rows of its other tables (agents, approvals,
/// memories) reference the workspaces without ON DELETE and go first, in the one transaction.
#[tokio::test]
async fn a_purge_deletes_the_go_tables_rows_first() {
    let database = go_database().await;
    let server = start_on(&database).await;

    let path = format!("/workspaces/{ALPHA}?confirm=true&purge=true");
    let (status, body) = server
        .request("DELETE", &path, None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"status": "purged", "cascade_deleted": 1}))
    );
    let pool = database.pool().await;
    for table in [
        "agents",
        "approval_requests",
        "agent_memories",
        "workspace_secrets",
    ] {
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE workspace_id IN ($1::uuid, $2::uuid)"
        )))
        .bind(ALPHA)
        .bind(BETA)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "{table}");
    }
    let workspaces: i64 = sqlx::query_scalar("SELECT count(*) FROM workspaces")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(workspaces, 1, "only removed Gamma is left");
    pool.close().await;
}
