//! Background loops of the HTTP process. Each stops when the server's shutdown token is
//! cancelled and ticks the [`crate::liveness::Liveness`] registry so `/admin/liveness` shows it.

pub mod activity_retention;
pub mod delegation_sweeper;
pub mod heartbeat_monitor;
pub mod instance_liveness;
pub mod provision_timeout;
pub mod scheduler;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::AppState;

/// Starts the background work of a serving process on `tasks`: the live event stream's
/// listener, the schedules' firing loop, the delegations' sweeper and the heartbeat liveness loop. Everything stops when `shutdown` is
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
            .listener(state.db.pool().clone(), state.liveness.clone()),
    );
    start_scheduler(state, shutdown, tasks);
    let retention_days = state
        .config
        .activity_retention_days
        .unwrap_or(activity_retention::DEFAULT_RETENTION_DAYS);
    if retention_days > 0 {
        tasks.spawn(activity_retention::run(
            state.db.pool().clone(),
            state.liveness.clone(),
            retention_days,
            shutdown.clone(),
        ));
    }
    tasks.spawn(provision_timeout::run(state.clone(), shutdown.clone()));
    if state.provisioning.backend().is_some() {
        tasks.spawn(instance_liveness::run(state.clone(), shutdown.clone()));
    }
    let interval = state
        .config
        .delegation_sweep_interval
        .filter(|i| !i.is_zero())
        .unwrap_or(delegation_sweeper::DEFAULT_INTERVAL);
    let stuck_after = state
        .config
        .delegation_stuck_after
        .filter(|i| !i.is_zero())
        .unwrap_or(delegation_sweeper::DEFAULT_STUCK_AFTER);
    tasks.spawn(delegation_sweeper::run(
        state.db.pool().clone(),
        state.liveness.clone(),
        interval,
        stuck_after,
        shutdown.clone(),
    ));
    let ttl = state.config.heartbeat_ttl;
    if ttl.is_zero() {
        tracing::warn!("heartbeat TTL is zero: workspaces are never marked offline");
        return;
    }
    tasks.spawn(heartbeat_monitor::run(
        state.db.pool().clone(),
        state.liveness.clone(),
        ttl,
        shutdown.clone(),
    ));
}

/// The schedules' firing loop, delivering through the server's own A2A proxy.
fn start_scheduler(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    let poll = state.config.scheduler_poll;
    if poll.is_zero() {
        tracing::warn!("scheduler poll interval is zero: schedules never fire");
        return;
    }
    let scheduler = scheduler::Scheduler {
        pool: state.db.pool().clone(),
        liveness: state.liveness.clone(),
        dispatch: std::sync::Arc::new(crate::schedules::dispatch::ThroughProxy {
            state: state.clone(),
        }),
        poll,
    };
    tasks.spawn(scheduler.run(shutdown.clone()));
}
