//! Schedules through the real router (validation with the original's messages, edits, history)
//! and the firing loop's claim: concurrent claimers take each due slot once.

use std::sync::Arc;

use api::background::scheduler::claim;
use api::schedules::dispatch::{ProxyUnavailable, ScheduleDispatch};
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{app, send, test_config, test_state};

async fn workspace(db: &PgPool) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name) VALUES ('cron') RETURNING id")
        .fetch_one(db)
        .await
        .unwrap()
}

fn router(db: &PgPool) -> Router {
    let dir = tempfile::tempdir().unwrap();
    app(test_state(db.clone(), test_config(dir.path())))
}

async fn create(app: &Router, id: Uuid, body: Value) -> Value {
    let reply = send(
        app,
        "POST",
        &format!("/workspaces/{id}/schedules"),
        Some(&body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_schedules_get_the_original_messages(db: PgPool) {
    let app = router(&db);
    let id = workspace(&db).await;
    let uri = format!("/workspaces/{id}/schedules");
    let cases = [
        (
            json!({"cron_expr": "0 9 * * *"}),
            400,
            "cron_expr and prompt are required",
        ),
        (
            json!({"cron_expr": "0 9 * * *", "prompt": "p", "timezone": "Mars/Base"}),
            400,
            "invalid timezone: Mars/Base",
        ),
        (
            json!({"cron_expr": "every day", "prompt": "p"}),
            400,
            "invalid request body",
        ),
        // February 30th never comes: refused instead of firing on every tick.
        (
            json!({"cron_expr": "0 0 30 2 *", "prompt": "p"}),
            400,
            "invalid request body",
        ),
        (
            json!({"cron_expr": "CRON_TZ=UTC", "prompt": "p"}),
            400,
            "invalid request body",
        ),
    ];
    for (body, status, message) in cases {
        let reply = send(&app, "POST", &uri, Some(&body)).await;
        assert_eq!(reply.status.as_u16(), status, "{body}");
        assert_eq!(reply.json, json!({"error": message}), "{body}");
    }
    create(&app, id, json!({"cron_expr": "0 9 * * *", "prompt": "p"})).await;
    let twin = send(
        &app,
        "POST",
        &uri,
        Some(&json!({"cron_expr": "0 9 * * *", "prompt": "q"})),
    )
    .await;
    assert_eq!(twin.status, StatusCode::CONFLICT);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_schedule_is_created_listed_edited_and_deleted(db: PgPool) {
    let app = router(&db);
    let id = workspace(&db).await;
    let created = create(&app, id, json!({"name": "daily", "cron_expr": "0 9 * * *", "timezone": "Europe/Paris", "prompt": "report\r\n"})).await;
    assert_eq!(created["status"], "created");
    let next: chrono::DateTime<chrono::Utc> =
        created["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        matches!(chrono::Timelike::hour(&next), 7 | 8),
        "09:00 Paris is 07:00 or 08:00 UTC"
    );
    let schedule_id = created["id"].as_str().unwrap();

    let listed = send(&app, "GET", &format!("/workspaces/{id}/schedules"), None).await;
    let row = &listed.json[0];
    assert_eq!(
        (
            row["prompt"].clone(),
            row["last_run_at"].clone(),
            row["last_status"].clone()
        ),
        (json!("report\n"), Value::Null, json!(""))
    );
    assert_eq!(row["source"], "runtime");

    let uri = format!("/workspaces/{id}/schedules/{schedule_id}");
    let edited = send(
        &app,
        "PATCH",
        &uri,
        Some(&json!({"cron_expr": "30 6 * * *", "timezone": "UTC"})),
    )
    .await;
    assert_eq!(edited.json, json!({"status": "updated"}));
    let listed = send(&app, "GET", &format!("/workspaces/{id}/schedules"), None).await;
    assert!(
        listed.json[0]["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("T06:30:00Z")
    );
    let bad = send(
        &app,
        "PATCH",
        &uri,
        Some(&json!({"timezone": "Nowhere/Land"})),
    )
    .await;
    assert_eq!(bad.json, json!({"error": "invalid timezone: Nowhere/Land"}));
    let unknown = send(
        &app,
        "PATCH",
        &format!("/workspaces/{id}/schedules/{}", Uuid::new_v4()),
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(unknown.json, json!({"error": "schedule not found"}));

    let run = send(&app, "POST", &format!("{uri}/run"), Some(&json!({}))).await;
    assert_eq!(
        run.json,
        json!({"status": "fired", "workspace_id": id, "prompt": "report\n"})
    );
    let health = send(
        &app,
        "GET",
        &format!("/workspaces/{id}/schedules/health"),
        None,
    )
    .await;
    assert_eq!(health.json[0]["name"], "daily");
    assert!(health.json[0].get("prompt").is_none());
    let platform = send(&app, "GET", "/admin/schedules/health", None).await;
    assert_eq!(platform.json[0]["status"], "never_run");
    assert_eq!(platform.json[0]["stale_threshold_seconds"], 172800);

    assert_eq!(
        send(&app, "DELETE", &uri, None).await.json,
        json!({"status": "deleted"})
    );
    assert_eq!(
        send(&app, "DELETE", &uri, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_claims_take_each_due_slot_once_and_a_skip_is_recorded(db: PgPool) {
    let app = router(&db);
    let id = workspace(&db).await;
    for n in 0..30 {
        create(
            &app,
            id,
            json!({"name": format!("s{n}"), "cron_expr": "0 9 * * *", "prompt": "p"}),
        )
        .await;
    }
    sqlx::query("UPDATE workspace_schedules SET next_run_at = now() - interval '1 minute'")
        .execute(&db)
        .await
        .unwrap();
    let claimers = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { claim(&db, 50).await.unwrap() })
    });
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let mut ids: Vec<_> = claimed.iter().map(|s| s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((claimed.len(), ids.len()), (30, 30));
    assert!(
        claim(&db, 50).await.unwrap().is_empty(),
        "nothing is due after the claim"
    );

    let dispatch: Arc<dyn ScheduleDispatch> = Arc::new(ProxyUnavailable);
    let stop = tokio_util::sync::CancellationToken::new();
    api::schedules::fire::fire(&db, &dispatch, &claimed[0], &stop)
        .await
        .unwrap();
    let uri = format!("/workspaces/{id}/schedules/{}/history", claimed[0].id);
    let history = send(&app, "GET", &uri, None).await;
    assert_eq!(history.json[0]["status"], "skipped");
    assert_eq!(history.json[0]["error_detail"], "a2a proxy unavailable");
    assert_eq!(history.json[0]["duration_ms"], Value::Null);
    assert_eq!(history.json[0]["request"]["skipped"], true);
    let event: Value = sqlx::query_scalar(
        "SELECT payload FROM structure_events WHERE event_type = 'CRON_SKIPPED'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(event["reason"], "a2a proxy unavailable");
    let listed = send(&app, "GET", &format!("/workspaces/{id}/schedules"), None).await;
    let fired = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(claimed[0].id))
        .unwrap()
        .clone();
    assert_eq!(
        (fired["run_count"].clone(), fired["last_status"].clone()),
        (json!(1), json!("skipped"))
    );
}
