//! Background loops of the HTTP process. Each stops when the server's shutdown token is
//! cancelled and ticks the [`crate::liveness::Liveness`] registry so `/admin/liveness` shows it.

pub mod heartbeat_monitor;
pub mod instance_liveness;
pub mod provision_timeout;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::AppState;

/// Starts the agents' side background work of a serving process on `tasks`: the live event
/// stream's listener and the heartbeat liveness loop. Everything stops when `shutdown` is
/// cancelled; the server joins `tasks` before it closes the database pool.
pub fn start(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    let hub = state.events.clone();
    let stop_hub = shutdown.clone();
    tasks.spawn(async move {
        stop_hub.cancelled().await;
        hub.shutdown().cancel();
    });
    tasks.spawn(
        state
            .events
            .listener(state.db.clone(), state.liveness.clone()),
    );
    tasks.spawn(provision_timeout::run(state.clone(), shutdown.clone()));
    if state.provisioning.backend().is_some() {
        tasks.spawn(instance_liveness::run(state.clone(), shutdown.clone()));
    }
    let ttl = state.config.heartbeat_ttl;
    if ttl.is_zero() {
        tracing::warn!("heartbeat TTL is zero: workspaces are never marked offline");
        return;
    }
    tasks.spawn(heartbeat_monitor::run(
        state.db.clone(),
        state.liveness.clone(),
        ttl,
        shutdown.clone(),
    ));
}
