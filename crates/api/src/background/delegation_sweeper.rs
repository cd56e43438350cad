//! Fails stale delegations in the ledger (the original's `delegation_sweeper.go` at 624ef4d0):
//! at start and then every `DELEGATION_SWEEPER_INTERVAL_S`, in-flight entries past their
//! deadline become `failed`, and `in_progress` entries whose heartbeat is older than
//! `DELEGATION_STUCK_THRESHOLD_S` become `stuck`. One statement each; running it on every replica
//! is harmless. It also deletes the chat attachments poll-mode agents acked over an hour ago or
//! never fetched in time (the original's `internal/pendinguploads/sweeper.go`).

use std::time::Duration;

use sqlx::PgPool;
use store::StoreError;
use store::delegations::Swept;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;

/// The name under which the loop shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "delegation-sweeper";
/// The default of `DELEGATION_SWEEPER_INTERVAL_S`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// The default of `DELEGATION_STUCK_THRESHOLD_S`.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(600);
/// The bound of one sweep.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the loop; it stops when `shutdown` is cancelled.
pub async fn run(
    pool: PgPool,
    liveness: Liveness,
    interval: Duration,
    stuck_after: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let swept = tokio::select! {
            () = shutdown.cancelled() => return,
            swept = tokio::time::timeout(SWEEP_TIMEOUT, sweep(&pool, stuck_after)) => swept,
        };
        match swept {
            Ok(Ok(Swept {
                failed: 0,
                stuck: 0,
            })) => {}
            Ok(Ok(swept)) => {
                tracing::info!(
                    failed = swept.failed,
                    stuck = swept.stuck,
                    "stale delegations swept"
                )
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "delegation sweep failed; retrying next tick")
            }
            Err(_) => tracing::warn!("delegation sweep timed out; retrying next tick"),
        }
        match store::uploads::sweep(&pool).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "old chat attachments deleted"),
            Err(error) => tracing::warn!(error = %error, "chat attachment sweep failed"),
        }
        liveness.tick(LIVENESS_NAME);
    }
}

/// One sweep of the ledger.
pub async fn sweep(pool: &PgPool, stuck_after: Duration) -> Result<Swept, StoreError> {
    store::delegations::sweep(pool, stuck_after.as_secs_f64()).await
}
