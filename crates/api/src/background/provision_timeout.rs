//! The provision-timeout sweep (`registry/provisiontimeout.go` at 624ef4d0): a workspace that
//! stays `provisioning` past its runtime's timeout (measured from its row's last change) becomes
//! `failed` with the reason, so nothing waits on a provision forever.

use std::time::Duration;

use serde_json::json;
use store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The name under which the loop shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "provision-timeout-sweep";
/// How often the sweep runs, at most (`provisiontimeout.go:49`); shorter timeouts sweep more
/// often so a short `PROVISION_TIMEOUT_SECONDS` is honoured promptly.
const MAX_INTERVAL: Duration = Duration::from_secs(30);
/// What a timed-out workspace shows (`provisiontimeout.go:176-185`).
pub const TIMEOUT_MESSAGE: &str = "provisioning timed out — container started but never called /registry/register. Check container logs and network connectivity to the platform.";

/// The sweep's interval for the shortest timeout in force.
pub fn interval(state: &AppState) -> Duration {
    let shortest = state.provisioning.timeout_for("");
    (shortest / 4).clamp(Duration::from_millis(250), MAX_INTERVAL)
}

/// The loop, to spawn; it ends when `shutdown` is cancelled.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval(&state));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(&state).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "workspaces failed: provisioning timed out"),
            Err(error) => {
                tracing::warn!(%error, "provision-timeout sweep failed; retrying next tick")
            }
        }
        state.liveness.tick(LIVENESS_NAME);
    }
}

/// One sweep: each timed-out workspace is failed and its `WORKSPACE_PROVISION_FAILED` recorded in
/// one transaction. Returns how many failed.
pub async fn sweep(state: &AppState) -> Result<usize, StoreError> {
    let mut failed = 0;
    for row in store::provisioning::provisioning(&state.db).await? {
        let timeout = state.provisioning.timeout_for(&row.runtime);
        if row.age_seconds < timeout.as_secs_f64() {
            continue;
        }
        let mut tx = state.db.begin().await?;
        if !store::provisioning::time_out(&mut *tx, row.id, timeout.as_secs_f64(), TIMEOUT_MESSAGE)
            .await?
        {
            continue;
        }
        let payload = json!({
            "error": TIMEOUT_MESSAGE,
            "runtime": row.runtime,
            "source": "provision_timeout_sweep",
            "timeout_secs": timeout.as_secs(),
        });
        store::events::record(
            &mut *tx,
            crate::provisioner::flow::PROVISION_FAILED_EVENT,
            Some(row.id),
            &payload,
        )
        .await?;
        tx.commit().await?;
        failed += 1;
    }
    Ok(failed)
}
