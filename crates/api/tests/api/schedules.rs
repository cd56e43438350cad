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

use crate::common::{dev_app as router, insert_child_workspace, send};

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
    let id = insert_child_workspace(&db, "cron", None).await;
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

async fn get(app: &Router, uri: String) -> Value {
    send(app, "GET", &uri, None).await.json
}

/// A workspace with one schedule, `daily` at 09:00 in Paris; returns both ids.
async fn daily(db: &PgPool, app: &Router) -> (Uuid, String) {
    let id = insert_child_workspace(db, "cron", None).await;
    let body = json!({"name": "daily", "cron_expr": "0 9 * * *", "timezone": "Europe/Paris",
                      "prompt": "report\r\n"});
    let created = create(app, id, body).await;
    assert_eq!(created["status"], "created");
    let next: chrono::DateTime<chrono::Utc> =
        created["next_run_at"].as_str().unwrap().parse().unwrap();
    let hour = chrono::Timelike::hour(&next);
    assert!(
        matches!(hour, 7 | 8),
        "09:00 in Paris is 07:00 or 08:00 UTC, not {hour}"
    );
    (id, created["id"].as_str().unwrap().to_string())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_schedule_is_created_and_listed(db: PgPool) {
    let app = router(&db);
    let (id, schedule) = daily(&db, &app).await;
    let listed = get(&app, format!("/workspaces/{id}/schedules")).await;
    let row = &listed[0];
    assert_eq!(row["id"], schedule);
    assert_eq!(row["prompt"], "report\n", "carriage returns are stripped");
    assert_eq!(row["last_run_at"], Value::Null);
    assert_eq!(
        (row["last_status"].clone(), row["source"].clone()),
        (json!(""), json!("runtime"))
    );

    let health = get(&app, format!("/workspaces/{id}/schedules/health")).await;
    assert_eq!(health[0]["name"], "daily");
    assert!(health[0].get("prompt").is_none());
    let platform = get(&app, "/admin/schedules/health".to_string()).await;
    assert_eq!(platform[0]["status"], "never_run");
    assert_eq!(platform[0]["stale_threshold_seconds"], 172800);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_schedule_is_edited_run_and_deleted(db: PgPool) {
    let app = router(&db);
    let (id, schedule) = daily(&db, &app).await;
    let uri = format!("/workspaces/{id}/schedules/{schedule}");
    let retimed = json!({"cron_expr": "30 6 * * *", "timezone": "UTC"});
    let edited = send(&app, "PATCH", &uri, Some(&retimed)).await;
    assert_eq!(edited.json, json!({"status": "updated"}));
    let listed = get(&app, format!("/workspaces/{id}/schedules")).await;
    assert!(
        listed[0]["next_run_at"]
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
    let unknown = format!("/workspaces/{id}/schedules/{}", Uuid::new_v4());
    let missing = send(&app, "PATCH", &unknown, Some(&json!({"name": "x"}))).await;
    assert_eq!(missing.json, json!({"error": "schedule not found"}));

    let run = send(&app, "POST", &format!("{uri}/run"), Some(&json!({}))).await;
    let fired = json!({"status": "fired", "workspace_id": id, "prompt": "report\n"});
    assert_eq!(run.json, fired);
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
async fn concurrent_claims_take_each_due_slot_once(db: PgPool) {
    let app = router(&db);
    let id = insert_child_workspace(&db, "cron", None).await;
    for n in 0..30 {
        let body = json!({"name": format!("s{n}"), "cron_expr": "0 9 * * *", "prompt": "p"});
        create(&app, id, body).await;
    }
    sqlx::query("UPDATE workspace_schedules SET next_run_at = now() - interval '1 minute'")
        .execute(&db)
        .await
        .unwrap();
    let claimers = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { claim(&db, 50).await.unwrap() })
    });
    let mut ids = Vec::new();
    for claimer in claimers {
        ids.extend(claimer.await.unwrap().into_iter().map(|s| s.id));
    }
    let claimed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((claimed, ids.len()), (30, 30));
    assert!(
        claim(&db, 50).await.unwrap().is_empty(),
        "nothing is due after the claim"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_run_without_a_proxy_is_recorded_as_skipped(db: PgPool) {
    let app = router(&db);
    let (id, schedule) = daily(&db, &app).await;
    sqlx::query("UPDATE workspace_schedules SET next_run_at = now()")
        .execute(&db)
        .await
        .unwrap();
    let due = claim(&db, 50).await.unwrap();
    let dispatch: Arc<dyn ScheduleDispatch> = Arc::new(ProxyUnavailable);
    let stop = tokio_util::sync::CancellationToken::new();
    api::schedules::fire::fire(&db, &dispatch, &due[0], &stop)
        .await
        .unwrap();

    let history = get(
        &app,
        format!("/workspaces/{id}/schedules/{schedule}/history"),
    )
    .await;
    assert_eq!(history[0]["status"], "skipped");
    assert_eq!(history[0]["error_detail"], "a2a proxy unavailable");
    assert_eq!(history[0]["duration_ms"], Value::Null);
    assert_eq!(history[0]["request"]["skipped"], true);
    let event: Value = sqlx::query_scalar(
        "SELECT payload FROM structure_events WHERE event_type = 'CRON_SKIPPED'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(event["reason"], "a2a proxy unavailable");
    let listed = get(&app, format!("/workspaces/{id}/schedules")).await;
    assert_eq!(
        (
            listed[0]["run_count"].clone(),
            listed[0]["last_status"].clone()
        ),
        (json!(1), json!("skipped"))
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn removing_a_workspace_turns_its_schedules_off(db: PgPool) {
    let app = router(&db);
    let (id, _) = daily(&db, &app).await;
    let removed = send(
        &app,
        "DELETE",
        &format!("/workspaces/{id}?confirm=true"),
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    let enabled: bool = sqlx::query_scalar("SELECT enabled FROM workspace_schedules")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(!enabled);
}

/// A dispatch whose agent always answers with an empty text part.
#[derive(Debug)]
struct EmptyAnswers;

impl ScheduleDispatch for EmptyAnswers {
    fn dispatch(
        &self,
        _: Uuid,
        _: Value,
    ) -> futures_util::future::BoxFuture<'static, api::schedules::dispatch::DispatchOutcome> {
        let body = r#"{"result":{"parts":[{"kind":"text","text":""}]}}"#.to_string();
        Box::pin(async move {
            api::schedules::dispatch::DispatchOutcome::Answered { status: 200, body }
        })
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn three_empty_answers_in_a_row_make_a_schedule_stale(db: PgPool) {
    let app = router(&db);
    let (id, _) = daily(&db, &app).await;
    let dispatch: Arc<dyn ScheduleDispatch> = Arc::new(EmptyAnswers);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        sqlx::query("UPDATE workspace_schedules SET next_run_at = now()")
            .execute(&db)
            .await
            .unwrap();
        let due = claim(&db, 50).await.unwrap();
        api::schedules::fire::fire(&db, &dispatch, &due[0], &stop)
            .await
            .unwrap();
        let listed = get(&app, format!("/workspaces/{id}/schedules")).await;
        statuses.push(listed[0]["last_status"].clone());
    }
    assert_eq!(statuses, [json!("ok"), json!("ok"), json!("stale")]);
    let listed = get(&app, format!("/workspaces/{id}/schedules")).await;
    let error = listed[0]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("empty response 3 consecutive times"),
        "{error}"
    );
}
