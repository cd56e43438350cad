//! Background loops of the HTTP process. Each stops when the server's shutdown token is
//! cancelled and ticks the [`crate::liveness::Liveness`] registry so `/admin/liveness` shows it.

pub mod heartbeat_monitor;
pub mod scheduler;

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
    start_scheduler(state, shutdown);
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

/// The schedules' firing loop. Until the A2A proxy is wired in, runs are recorded as skipped.
fn start_scheduler(state: &AppState, shutdown: &CancellationToken) {
    let poll = state.config.scheduler_poll;
    if poll.is_zero() {
        tracing::warn!("scheduler poll interval is zero: schedules never fire");
        return;
    }
    scheduler::Scheduler {
        pool: state.db.clone(),
        liveness: state.liveness.clone(),
        dispatch: std::sync::Arc::new(crate::schedules::dispatch::ProxyUnavailable),
        poll,
    }
    .spawn(shutdown.clone());
}
