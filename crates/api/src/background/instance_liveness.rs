//! Liveness through the provisioner's status call: an online or degraded workspace whose
//! instance the control plane reports not running goes `offline` (`WORKSPACE_OFFLINE {}`) and is
//! restarted, as the original's health sweep does for containers (`registry/healthsweep.go` at
//! 624ef4d0). An unknown state (any error) never triggers a restart.

use std::time::Duration;

use serde_json::json;
use store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::provisioner::flow;

/// The name under which the loop shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "instance-liveness";
/// How often instances are checked.
const INTERVAL: Duration = Duration::from_secs(30);

/// The loop, to spawn (only with a provisioner); it ends when `shutdown` is cancelled.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = check(&state).await {
            tracing::warn!(%error, "instance liveness check failed; retrying next tick");
        }
        state.liveness.tick(LIVENESS_NAME);
    }
}

/// One pass; how many workspaces went offline (and were restarted).
pub async fn check(state: &AppState) -> Result<usize, StoreError> {
    let Some(backend) = flow::backend(state) else {
        return Ok(0);
    };
    let mut restarted = 0;
    for instance in store::provisioning::live_instances(&state.db).await? {
        let id = instance.workspace_id;
        match backend.is_running(id, &instance.instance_id).await {
            Ok(false) => {}
            Ok(true) => continue,
            Err(error) => {
                tracing::debug!(workspace_id = %id, %error, "instance state unknown: left alone");
                continue;
            }
        }
        let mut tx = state.db.begin().await?;
        if !store::provisioning::mark_offline(&mut *tx, id).await? {
            continue;
        }
        store::events::record(&mut *tx, "WORKSPACE_OFFLINE", Some(id), &json!({})).await?;
        tx.commit().await?;
        flow::restart_offline(state, id).await?;
        restarted += 1;
    }
    Ok(restarted)
}
