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
