//! The A2A proxy's background writer (`messaging::recorder`): records are written in batches,
//! each once, and nothing handed to it is lost at shutdown.

use std::time::Duration;

use api::messaging::Messaging;
use api::messaging::recorder::{Activity, Record};
use serde_json::json;
use serde_json::value::to_raw_value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const CALLS: usize = 600;

async fn workspace(db: &PgPool, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO workspaces (name, status) VALUES ($1, 'online') RETURNING id")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap()
}

fn activity(target: Uuid, caller: Uuid, n: usize) -> Record {
    Record::Activity(Activity {
        workspace_id: target,
        activity_type: "a2a_receive",
        source_id: Some(caller),
        target_id: Some(target),
        method: Some("message/send".into()),
        summary: Some(format!("call {n}")),
        request_body: Some(to_raw_value(&json!({"n": n})).unwrap()),
        response_body: Some(to_raw_value(&json!({"result": n})).unwrap()),
        duration_ms: Some(1),
        status: "ok",
        error_detail: None,
        tool_trace: None,
    })
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn everything_recorded_is_written_by_shutdown(db: PgPool) {
    let (target, caller) = (workspace(&db, "t").await, workspace(&db, "c").await);
    let tasks = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let messaging = std::sync::Arc::new(Messaging::new(tasks.clone()));
    messaging
        .recorder
        .start(db.clone(), &tasks, shutdown.clone());

    // Many concurrent calls, more than one batch and more than the queue holds.
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (messaging, db) = (messaging.clone(), db.clone());
        senders.push(tokio::spawn(async move {
            for n in (worker..CALLS).step_by(4) {
                messaging.record(&db, activity(target, caller, n)).await;
                let usage = Record::Usage {
                    workspace_id: target,
                    input_tokens: 10,
                    output_tokens: 1,
                };
                messaging.record(&db, usage).await;
                messaging.record(&db, Record::Outbound(caller)).await;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    // Written through the writer after shutdown started: still written.
    shutdown.cancel();
    tokio::task::yield_now().await;
    messaging.record(&db, activity(target, caller, CALLS)).await;
    tasks.close();
    tokio::time::timeout(WAIT, tasks.wait())
        .await
        .expect("the writer ends once everything is written");

    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT summary FROM activity_logs WHERE workspace_id = $1 ORDER BY created_at, id",
    )
    .bind(target)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), CALLS + 1, "every activity row is written");
    let mut seen: Vec<usize> = rows
        .iter()
        .filter_map(|(summary,)| summary.strip_prefix("call ")?.parse().ok())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..=CALLS).collect::<Vec<_>>(), "each once");
    let (calls, input): (i32, i64) = sqlx::query_as(
        "SELECT call_count, input_tokens FROM workspace_token_usage WHERE workspace_id = $1",
    )
    .bind(target)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((calls as usize, input as usize), (CALLS, 10 * CALLS));
    let outbound: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_outbound_at FROM workspaces WHERE id = $1")
            .bind(caller)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(outbound.is_some());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_batch_with_a_bad_record_loses_only_that_record(db: PgPool) {
    let target = workspace(&db, "t").await;
    let records = vec![
        activity(target, target, 1),
        // A usage row for a workspace that does not exist violates its foreign key.
        Record::Usage {
            workspace_id: Uuid::new_v4(),
            input_tokens: 1,
            output_tokens: 1,
        },
        activity(target, target, 2),
    ];
    api::messaging::recorder::write_batch(&db, &records).await;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM activity_logs WHERE workspace_id = $1")
            .bind(target)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(count, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_batch_announces_each_event_whole_and_in_order_in_few_notifications(db: PgPool) {
    use store::events::Announcement;

    let (target, caller) = (workspace(&db, "t").await, workspace(&db, "c").await);
    let mut listener = sqlx::postgres::PgListener::connect_with(&db).await.unwrap();
    listener.listen(store::events::CHANNEL).await.unwrap();
    // Small records around one whose answer is too large for a notification.
    let large = 60;
    let mut batch: Vec<Record> = (0..120).map(|n| activity(target, caller, n)).collect();
    if let Record::Activity(activity) = &mut batch[large] {
        let text = "x".repeat(20_000);
        activity.response_body = Some(to_raw_value(&json!({ "result": text })).unwrap());
    }
    api::messaging::recorder::write_batch(&db, &batch).await;

    let mut notifications = 0;
    let mut seen = Vec::new();
    while seen.len() < batch.len() {
        let notification = tokio::time::timeout(WAIT, listener.recv())
            .await
            .expect("every event is announced")
            .unwrap();
        notifications += 1;
        seen.extend(Announcement::parse_all(notification.payload()));
    }
    assert!(
        notifications < 20,
        "{notifications} notifications for {} events: small ones are packed",
        batch.len()
    );
    for (n, announcement) in seen.iter().enumerate() {
        match announcement {
            Announcement::LargeId(_) => assert_eq!(n, large, "the large one keeps its place"),
            Announcement::Event(event) => {
                let payload = event.payload.as_ref().unwrap();
                assert_eq!(event.event_type, "ACTIVITY_LOGGED");
                assert_eq!(event.workspace_id, Some(target));
                assert_eq!(payload["summary"], format!("call {n}"));
                assert_eq!(payload["request_body"], json!({"n": n}));
                assert_eq!(payload["response_body"], json!({"result": n}));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
