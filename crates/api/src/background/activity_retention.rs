//! Keeps the activity log bounded: rows older than `ACTIVITY_RETENTION_DAYS` are deleted by a
//! sweep every hour (one statement; running it on every replica is harmless).

use std::time::Duration;

use sqlx::PgPool;
use store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;

/// The name under which the loop shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "activity-retention";
/// The default of `ACTIVITY_RETENTION_DAYS`.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// How often the sweep runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Starts the loop; it stops when `shutdown` is cancelled.
pub async fn run(pool: PgPool, liveness: Liveness, days: u32, shutdown: CancellationToken) {
    {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match sweep(&pool, days).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, days, "old activity deleted"),
                Err(error) => {
                    tracing::warn!(error = %error, "activity retention sweep failed; retrying next tick")
                }
            }
            liveness.tick(LIVENESS_NAME);
        }
    }
}

/// One sweep: deletes the activities older than `days` days.
pub async fn sweep(pool: &PgPool, days: u32) -> Result<u64, StoreError> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    store::activity::delete_older_than(pool, days).await
}
