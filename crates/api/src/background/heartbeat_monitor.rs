//! Marks workspaces `offline` when their agent stops sending heartbeats.
//!
//! The original kept a Redis key per workspace with a TTL and reacted to its expiry; here the last
//! heartbeat lives in PostgreSQL (`workspaces.last_heartbeat_at`) and this loop sweeps for stale
//! ones. The sweep is one statement that skips rows locked by another replica's sweep, so running
//! it on every replica is safe.

use std::time::Duration;

use sqlx::PgPool;
use store::StoreError;
use store::registry::WentOffline;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;

/// The name under which the loop shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "liveness-monitor";

/// The event recorded for each workspace that went offline.
pub const OFFLINE_EVENT: &str = "WORKSPACE_OFFLINE";

/// How often to sweep for a given TTL: often enough that a workspace goes offline within about a
/// third of the TTL after it expired, but at least every 30 s so liveness stays fresh.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The loop, to spawn; it ends when `shutdown` is cancelled.
pub async fn run(pool: PgPool, liveness: Liveness, ttl: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(sweep_interval(ttl));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(&pool, ttl).await {
            Ok(offline) if !offline.is_empty() => {
                tracing::info!(
                    count = offline.len(),
                    "workspaces went offline: heartbeats stopped"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "liveness sweep failed; retrying next tick")
            }
        }
        // Ticks even after a failed sweep: the loop itself is alive; the log says why it failed.
        liveness.tick(LIVENESS_NAME);
    }
}

/// One sweep: marks stale workspaces offline and records `WORKSPACE_OFFLINE` for each, in one
/// transaction so no transition goes unrecorded.
pub async fn sweep(pool: &PgPool, ttl: Duration) -> Result<Vec<WentOffline>, StoreError> {
    let mut tx = pool.begin().await?;
    let offline = store::registry::mark_stale_offline(&mut *tx, ttl.as_secs_f64()).await?;
    for went in &offline {
        let payload = serde_json::json!({ "previous_status": went.previous_status });
        store::events::record(&mut *tx, OFFLINE_EVENT, Some(went.workspace_id), &payload).await?;
    }
    tx.commit().await?;
    Ok(offline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_third_of_the_ttl_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(90)),
            Duration::from_secs(30)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(9)),
            Duration::from_secs(3)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(100)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
    }
}
