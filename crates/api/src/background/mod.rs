//! Background loops of the HTTP process. Each stops when the server's shutdown token is
//! cancelled and ticks the [`crate::liveness::Liveness`] registry so `/admin/liveness` shows it.

pub mod activity_retention;
pub mod heartbeat_monitor;

use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Starts the agents' side background work of a serving process: the live event stream's
/// listener and the heartbeat liveness loop. Everything stops when `shutdown` is cancelled.
pub fn start(state: &AppState, shutdown: &CancellationToken) {
    let hub = state.events.clone();
    let stop_hub = shutdown.clone();
    tokio::spawn(async move {
        stop_hub.cancelled().await;
        hub.shutdown().cancel();
    });
    state
        .events
        .spawn_listener(state.db.clone(), state.liveness.clone());
    let retention_days = state
        .config
        .activity_retention_days
        .unwrap_or(activity_retention::DEFAULT_RETENTION_DAYS);
    if retention_days > 0 {
        activity_retention::spawn(
            state.db.clone(),
            state.liveness.clone(),
            retention_days,
            shutdown.clone(),
        );
    }
    let ttl = state.config.heartbeat_ttl;
    if ttl.is_zero() {
        tracing::warn!("heartbeat TTL is zero: workspaces are never marked offline");
        return;
    }
    heartbeat_monitor::spawn(
        state.db.clone(),
        state.liveness.clone(),
        ttl,
        shutdown.clone(),
    );
}
