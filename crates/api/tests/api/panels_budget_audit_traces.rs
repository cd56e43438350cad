//! Budget, today's token usage, the audit ledger with its HMAC chain, and the Langfuse traces
//! proxy (against local fake Langfuse servers), on a real PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Reply, app, assert_error, send, send_raw, test_config, test_state};
use api::panels::audit::{LedgerKey, event_hmac};
use api::panels::traces::LangfuseConfig;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use store::audit::AuditEvent;
use uuid::Uuid;

/// Bounds every request of these tests, so a hang fails instead of blocking the suite.
const WAIT: Duration = Duration::from_secs(20);

fn dev_app(db: &PgPool) -> Router {
    app(test_state(db.clone(), test_config(&std::env::temp_dir())))
}

async fn workspace(db: &PgPool, name: &str) -> Uuid {
    crate::common::insert_workspace(db, name, "langgraph", None).await
}

// ---- budget ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_budget_reads_and_sets_the_limit_in_cents(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w").await;
    let uri = format!("/workspaces/{id}/budget");
    let reply = send(&app, "GET", &uri, None).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (
            StatusCode::OK,
            r#"{"budget_limit":null,"monthly_spend":0,"budget_remaining":null}"#
        )
    );
    sqlx::query("UPDATE workspaces SET monthly_spend = 120 WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    for (limit, answer) in [
        (
            json!(500),
            r#"{"budget_limit":500,"monthly_spend":120,"budget_remaining":380}"#,
        ),
        (
            json!(100.9),
            r#"{"budget_limit":100,"monthly_spend":120,"budget_remaining":-20}"#,
        ),
        (
            json!(null),
            r#"{"budget_limit":null,"monthly_spend":120,"budget_remaining":null}"#,
        ),
        (
            json!(0),
            r#"{"budget_limit":0,"monthly_spend":120,"budget_remaining":-120}"#,
        ),
    ] {
        let body = json!({ "budget_limit": limit });
        let reply = send(&app, "PATCH", &uri, Some(&body)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (StatusCode::OK, answer)
        );
        assert_eq!(send(&app, "GET", &uri, None).await.text, answer);
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_budgets_get_the_originals_400s_and_change_nothing(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w").await;
    let uri = format!("/workspaces/{id}/budget");
    send(&app, "PATCH", &uri, Some(&json!({"budget_limit": 700}))).await;
    let typed = "budget_limit must be an integer (USD cents) or null";
    for (body, message) in [
        (&b""[..], "invalid request body"),
        (b"[1]", "invalid request body"),
        (b"12", "invalid request body"),
        (b"{}", "budget_limit field is required"),
        (b"null", "budget_limit field is required"),
        (
            br#"{"budget_limit":-1}"#,
            "budget_limit must be >= 0 (USD cents)",
        ),
        (br#"{"budget_limit":"500"}"#, typed),
        (br#"{"budget_limit":true}"#, typed),
    ] {
        let reply = send_raw(&app, "PATCH", &uri, body.to_vec()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, message);
    }
    let limit: Option<i64> =
        sqlx::query_scalar("SELECT budget_limit FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(limit, Some(700));

    let reply = send(&app, "GET", "/workspaces/nope/budget", None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid workspace ID");
    sqlx::query("UPDATE workspaces SET status = 'removed' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    for target in [id, Uuid::new_v4()] {
        let uri = format!("/workspaces/{target}/budget");
        let reply = send(&app, "GET", &uri, None).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "workspace not found");
        let reply = send(&app, "PATCH", &uri, Some(&json!({"budget_limit": 1}))).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "workspace not found");
    }
}

// ---- metrics ----

fn midnight_today() -> DateTime<Utc> {
    api::panels::budget::today_utc()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn metrics_sum_todays_usage_only(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w").await;
    let uri = format!("/workspaces/{id}/metrics");
    let today = midnight_today();
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let reply = send(&app, "GET", &uri, None).await;
    assert_eq!(
        reply.text,
        format!(
            r#"{{"estimated_cost_usd":"0.000000","input_tokens":0,"output_tokens":0,"period_end":"{}","period_start":"{}","total_calls":0}}"#,
            day(today + chrono::Days::new(1)),
            day(today)
        )
    );
    store::budget::add_usage(&db, id, today, 1000, 200)
        .await
        .unwrap();
    store::budget::add_usage(&db, id, today, 1000, 200)
        .await
        .unwrap();
    // Nothing recorded for a call without tokens; yesterday's row is not today's.
    store::budget::add_usage(&db, id, today, 0, -3)
        .await
        .unwrap();
    let yesterday = today - chrono::Days::new(1);
    store::budget::add_usage(&db, id, yesterday, 5, 5)
        .await
        .unwrap();
    let reply = send(&app, "GET", &uri, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        (
            &reply.json["input_tokens"],
            &reply.json["output_tokens"],
            &reply.json["total_calls"],
            &reply.json["estimated_cost_usd"]
        ),
        (&json!(2000), &json!(400), &json!(2), &json!("0.012000"))
    );

    // A call reporting absurd counts is clamped to 10M tokens.
    let other = workspace(&db, "other").await;
    store::budget::add_usage(&db, other, today, i64::MAX, 0)
        .await
        .unwrap();
    let reply = send(&app, "GET", &format!("/workspaces/{other}/metrics"), None).await;
    assert_eq!(reply.json["input_tokens"], json!(10_000_000));
    assert_eq!(reply.json["estimated_cost_usd"], json!("30.000000"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn metrics_know_removed_workspaces_but_not_unknown_ones(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w").await;
    sqlx::query("UPDATE workspaces SET status = 'removed' WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let reply = send(&app, "GET", &format!("/workspaces/{id}/metrics"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{}/metrics", Uuid::new_v4()),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "workspace not found");
    let reply = send(&app, "GET", "/workspaces/x/metrics", None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid workspace ID");
}

// ---- audit ----

/// Appends a correctly chained row for `agent` (signed with `key`) and returns it.
async fn append(
    db: &PgPool,
    key: &[u8; 32],
    workspace_id: Uuid,
    agent: &str,
    previous: Option<&AuditEvent>,
    at: DateTime<Utc>,
) -> AuditEvent {
    let mut event = AuditEvent {
        id: format!("ev-{}", Uuid::new_v4().simple()),
        timestamp: at,
        agent_id: agent.to_string(),
        session_id: "session-1".to_string(),
        operation: "llm_call".to_string(),
        input_hash: Some("in<&>".to_string()),
        output_hash: None,
        model_used: Some("claude".to_string()),
        human_oversight_flag: false,
        risk_flag: agent == "risky",
        prev_hmac: previous.map(|p| p.hmac.clone()),
        hmac: String::new(),
        workspace_id,
    };
    event.hmac = event_hmac(key, &event);
    store::audit::insert(db, &event).await.unwrap();
    event
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 17, 9, minute, 0).unwrap() + chrono::Duration::microseconds(1500)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_audit_ledger_pages_filters_and_verifies_its_chain(db: PgPool) {
    let ledger = LedgerKey::new("ledger-salt");
    let key = ledger.key().await.unwrap();
    let mut config = test_config(&std::env::temp_dir());
    config.audit_ledger = Some(ledger);
    let app = app(test_state(db.clone(), config));
    let id = workspace(&db, "w").await;
    let other = workspace(&db, "other").await;
    let uri = |query: &str| format!("/workspaces/{id}/audit{query}");

    let reply = send(&app, "GET", &uri(""), None).await;
    assert_eq!(
        reply.text,
        r#"{"chain_valid":true,"events":null,"total":0}"#
    );

    let first = append(&db, &key, id, "agent-a", None, at(1)).await;
    append(&db, &key, id, "risky", None, at(2)).await;
    let second = append(&db, &key, id, "agent-a", Some(&first), at(3)).await;
    append(&db, &key, id, "agent-a", Some(&second), at(4)).await;
    append(&db, &key, other, "agent-a", None, at(5)).await;

    let reply = send(&app, "GET", &uri(""), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        (&reply.json["total"], &reply.json["chain_valid"]),
        (&json!(4), &json!(true))
    );
    let events = reply.json["events"].as_array().unwrap();
    assert_eq!(events[0]["id"], json!(first.id));
    assert_eq!(events[0]["timestamp"], json!("2026-04-17T09:01:00.0015Z"));
    assert_eq!(events[0]["input_hash"], json!("in<&>"));
    assert_eq!(events[0]["output_hash"], Value::Null);
    assert_eq!(events[0]["workspace_id"], json!(id));

    let page = send(&app, "GET", &uri("?limit=2"), None).await;
    assert_eq!(
        (
            &page.json["total"],
            page.json["events"].as_array().unwrap().len()
        ),
        (&json!(4), 2)
    );
    assert_eq!(page.json["chain_valid"], json!(true));
    let later = send(&app, "GET", &uri("?limit=2&offset=2"), None).await;
    assert_eq!(
        later.json["chain_valid"],
        Value::Null,
        "a later page gets no verdict"
    );
    let filtered = send(&app, "GET", &uri("?agent_id=risky"), None).await;
    assert_eq!(filtered.json["total"], json!(1));
    // `from` is inclusive, `to` exclusive; a window that starts mid-chain cannot verify.
    let window = send(
        &app,
        "GET",
        &uri("?from=2026-04-17T09:02:00.0015Z&to=2026-04-17T09:04:00.0015Z"),
        None,
    )
    .await;
    assert_eq!(
        (&window.json["total"], &window.json["chain_valid"]),
        (&json!(2), &json!(false))
    );

    sqlx::query("UPDATE audit_events SET operation = 'tool_call' WHERE id = $1")
        .bind(&second.id)
        .execute(&db)
        .await
        .unwrap();
    let tampered = send(&app, "GET", &uri(""), None).await;
    assert_eq!(tampered.json["chain_valid"], json!(false));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_audit_ledger_without_a_salt_has_no_verdict_and_checks_its_bounds(db: PgPool) {
    let app = dev_app(&db);
    let id = workspace(&db, "w").await;
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/audit?limit=0&offset=-3"),
        None,
    )
    .await;
    assert_eq!(
        reply.text,
        r#"{"chain_valid":null,"events":null,"total":0}"#
    );
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/audit?from=yesterday"),
        None,
    )
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "from must be RFC 3339 (e.g. 2026-04-17T00:00:00Z)",
    );
    let reply = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/audit?to=2026-04-17"),
        None,
    )
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "to must be RFC 3339 (e.g. 2026-04-17T23:59:59Z)",
    );
    let reply = send(&app, "GET", "/workspaces/x/audit", None).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid workspace ID");
}

// ---- traces ----

/// What the fake Langfuse saw: the request's path and query, and its Authorization header.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A fake Langfuse on a free local port; `hang` makes it never answer.
async fn fake_langfuse(status: StatusCode, body: &'static str, hang: bool) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let handler = move |uri: Uri, headers: HeaderMap| {
        let record = record.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            record.lock().unwrap().push((uri.to_string(), auth));
            if hang {
                std::future::pending::<()>().await;
            }
            (status, body)
        }
    };
    let router = Router::new().route("/api/public/traces", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{address}"), seen)
}

fn traces_app(db: &PgPool, host: &str, timeout: Duration) -> Router {
    let mut config = test_config(&std::env::temp_dir());
    config.langfuse = LangfuseConfig::new(host, "pk-lf", "sk-lf", timeout);
    app(test_state(db.clone(), config))
}

async fn get_traces(app: &Router, id: Uuid) -> Reply {
    let uri = format!("/workspaces/{id}/traces");
    tokio::time::timeout(WAIT, send(app, "GET", &uri, None))
        .await
        .expect("the traces route answers within its timeout")
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn traces_relay_langfuse_and_are_empty_without_it(db: PgPool) {
    let id = workspace(&db, "w").await;
    let reply = get_traces(&dev_app(&db), id).await;
    assert_eq!((reply.status, reply.text.as_str()), (StatusCode::OK, "[]"));

    let body = r#"{"data":[{"id":"trace-1","name":"run"}],"meta":{"page":1}}"#;
    let (host, seen) = fake_langfuse(StatusCode::OK, body, false).await;
    let app = traces_app(&db, &host, WAIT);
    let reply = get_traces(&app, id).await;
    assert_eq!((reply.status, reply.text.as_str()), (StatusCode::OK, body));
    let (uri, auth) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        format!("/api/public/traces?limit=20&orderBy=timestamp&orderDir=desc&tags={id}")
    );
    // HTTP basic auth of public:secret.
    assert_eq!(auth, "Basic cGstbGY6c2stbGY=");

    // Langfuse's own status is relayed as it is.
    let (host, _) =
        fake_langfuse(StatusCode::UNAUTHORIZED, r#"{"message":"bad key"}"#, false).await;
    let reply = get_traces(&traces_app(&db, &host, WAIT), id).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json, json!({"message": "bad key"}));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_langfuse_that_hangs_or_is_down_gives_no_traces(db: PgPool) {
    let id = workspace(&db, "w").await;
    // The fake answers `[{"hung":false}]` if it ever answers; only the timeout gives `[]`.
    let (host, _) = fake_langfuse(StatusCode::OK, r#"[{"hung":false}]"#, true).await;
    let reply = get_traces(&traces_app(&db, &host, Duration::from_secs(1)), id).await;
    assert_eq!((reply.status, reply.text.as_str()), (StatusCode::OK, "[]"));

    // Nothing listens on the port of a dropped listener.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let reply = get_traces(&traces_app(&db, &closed, WAIT), id).await;
    assert_eq!((reply.status, reply.text.as_str()), (StatusCode::OK, "[]"));
    // Half-configured Langfuse is off.
    assert!(LangfuseConfig::new(&host, "", "sk", WAIT).is_none());
}
