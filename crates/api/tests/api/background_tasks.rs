//! The background tasks of a serving process (event stream listener, heartbeat sweep, delegations'
//! sweeper, the hub's stopper) are all on the server's task tracker and all end once shutdown is cancelled, so the
//! server can join them before it closes the database pool.

use std::time::Duration;

use api::AppState;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bounds every wait so a task that does not stop fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn no_background_task_outlives_shutdown(db: PgPool) {
    let shutdown = CancellationToken::new();
    let mut config = crate::common::test_config(&std::env::temp_dir());
    config.heartbeat_ttl = Duration::from_secs(3);
    let state = AppState::new(crate::common::test_services(db.clone(), config));
    let tasks = TaskTracker::new();
    api::background::start(&state, &shutdown, &tasks);
    // Running: both loops have ticked (the listener once it listens, the sweep once it swept).
    tokio::time::timeout(WAIT, async {
        loop {
            let ticked = state.liveness.snapshot();
            if ticked.contains_key(api::events_hub::LIVENESS_NAME)
                && ticked.contains_key(api::background::heartbeat_monitor::LIVENESS_NAME)
                && ticked.contains_key(api::background::delegation_sweeper::LIVENESS_NAME)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the background loops start");
    assert_eq!(
        tasks.len(),
        6,
        "the hub's stopper, its listener, the activity retention sweep, the delegations' sweeper, \
         the heartbeat sweep and the provision-timeout sweep (the scheduler is off: its poll \
         interval is zero here)"
    );

    shutdown.cancel();
    tasks.close();
    tokio::time::timeout(WAIT, tasks.wait())
        .await
        .expect("every background task ends after shutdown");
    assert!(tasks.is_empty());
    assert!(
        state.events.shutdown().is_cancelled(),
        "the hub heard the shutdown"
    );
    // Nothing holds a connection any more: the pool can close at once.
    tokio::time::timeout(WAIT, db.close())
        .await
        .expect("the pool closes");
}
