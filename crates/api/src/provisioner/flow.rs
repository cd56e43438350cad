//! Provisions, restarts and stops over the configured [`Provisioner`], as detached tasks on the
//! provisioning tracker, at most `PROVISION_CONCURRENCY` provision calls in flight
//! (`handlers/workspace_provision.go`, `workspace_restart.go` at 624ef4d0).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use store::StoreError;
use store::provisioning::{Instance, ProvisionTarget};
use uuid::Uuid;

use super::{ProvisionRequest, Provisioner, Provisioning};
use crate::AppState;

/// One provision's bound, permit wait included (`provisioner.go:76`: 3 min).
const PROVISION_DEADLINE: Duration = Duration::from_secs(180);
/// The delays between a restart's stop attempts (`workspace_restart.go:435-515`: 3 attempts).
const STOP_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
/// What users see of any provision failure (`workspace_provision.go:846-853`).
pub const PROVISION_FAILED: &str = "provisioning failed";
/// The event of a failed provision.
pub const PROVISION_FAILED_EVENT: &str = "WORKSPACE_PROVISION_FAILED";

/// Sets a workspace `provisioning` and records `WORKSPACE_PROVISIONING {"name","tier","runtime"}`
/// in the caller's transaction. Returns whether the row changed (removed rows do not).
pub async fn begin(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    name: &str,
    tier: i32,
    runtime: &str,
) -> Result<bool, StoreError> {
    if !store::provisioning::begin_provisioning(&mut *conn, id).await? {
        return Ok(false);
    }
    let payload = json!({ "name": name, "tier": tier, "runtime": runtime });
    store::events::record(&mut *conn, "WORKSPACE_PROVISIONING", Some(id), &payload).await?;
    Ok(true)
}

/// Starts provisioning `id` in the background (no-op without a backend).
pub fn spawn_provision(state: &AppState, id: Uuid) {
    spawn(state, id, false);
}

/// Stops `id`'s instance (with retries) and provisions it again, in the background.
pub fn spawn_restart(state: &AppState, id: Uuid) {
    spawn(state, id, true);
}

fn spawn(state: &AppState, id: Uuid, stop_first: bool) {
    let Some(backend) = state.provisioning.backend().cloned() else {
        return;
    };
    let job_state = state.clone();
    state.provisioning.tasks.spawn(async move {
        if stop_first {
            stop_with_retry(&job_state, backend.as_ref(), id).await;
        }
        let run = provision(&job_state, backend.as_ref(), id);
        let outcome = match tokio::time::timeout(PROVISION_DEADLINE, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Logged("provision deadline exceeded".into())),
        };
        if let Err(failure) = outcome {
            fail(&job_state, id, failure).await;
        }
    });
}

/// Why a provision failed: the message users see (an environment error) or only the log.
enum Failure {
    Shown(String),
    Logged(String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Logged(error.to_string())
    }
}

/// One provision: the row, its environment, the control plane's instance, stored unless the
/// workspace was removed meanwhile (then the fresh instance is stopped: nothing left running).
async fn provision(state: &AppState, backend: &dyn Provisioner, id: Uuid) -> Result<(), Failure> {
    let _permit = state
        .provisioning
        .permits
        .acquire()
        .await
        .map_err(|_| Failure::Logged("provisioning closed".into()))?;
    let Some(target) = live_target(state, id).await? else {
        return Ok(());
    };
    let request = request_for(state, &target).await?;
    // SaaS agents get a fresh token from their first register (`workspace_provision.go:309-355`).
    store::tokens::revoke_for_workspaces(&state.db, &[id]).await?;
    let instance_id = backend
        .start(&request)
        .await
        .map_err(|e| Failure::Logged(e.to_string()))?;
    if !store::provisioning::attach_instance(&state.db, id, &instance_id).await? {
        tracing::info!(workspace_id = %id, %instance_id, "workspace removed mid-provision: stopping its instance");
        if let Err(error) = backend.stop(id, &instance_id).await {
            tracing::warn!(workspace_id = %id, %instance_id, %error, "LEAK-SUSPECT stop after removal failed");
        }
    }
    Ok(())
}

/// The row to provision, unless it is gone or removed.
async fn live_target(state: &AppState, id: Uuid) -> Result<Option<ProvisionTarget>, Failure> {
    let target = store::provisioning::target(&state.db, id).await?;
    Ok(target.filter(|t| t.status != "removed"))
}

async fn request_for(
    state: &AppState,
    target: &ProvisionTarget,
) -> Result<ProvisionRequest, Failure> {
    let sealed = store::secret_scopes::sealed_for_workspace(&state.db, target.id).await?;
    let env = super::env::assemble(target, &sealed, &state.crypto)
        .map_err(|e| Failure::Shown(e.to_string()))?;
    Ok(ProvisionRequest {
        org_id: state.provisioning.org_id.clone(),
        workspace_id: target.id,
        runtime: target.runtime.clone(),
        tier: target.tier,
        platform_url: state.provisioning.platform_url.clone(),
        env,
    })
}

/// `markProvisionFailed` (`workspace_provision_shared.go:210-225`): the event, then `failed`.
async fn fail(state: &AppState, id: Uuid, failure: Failure) {
    let message = match failure {
        Failure::Shown(message) => message,
        Failure::Logged(cause) => {
            tracing::warn!(workspace_id = %id, %cause, "provisioning failed");
            PROVISION_FAILED.to_string()
        }
    };
    let payload = json!({ "error": message });
    if let Err(error) = mark_failed(state, id, &message, false, &payload).await {
        tracing::error!(workspace_id = %id, %error, "could not mark the workspace failed");
    }
}

/// Marks `failed` (only a `provisioning` row when `only_provisioning`) and records the failure
/// event in one transaction. Returns whether a row changed (no event otherwise).
pub async fn mark_failed(
    state: &AppState,
    id: Uuid,
    message: &str,
    only_provisioning: bool,
    payload: &Value,
) -> Result<bool, StoreError> {
    let mut tx = state.db.begin().await?;
    if !store::provisioning::mark_failed(&mut *tx, id, message, only_provisioning).await? {
        return Ok(false);
    }
    store::events::record(&mut *tx, PROVISION_FAILED_EVENT, Some(id), payload).await?;
    tx.commit().await?;
    Ok(true)
}

/// `cpStopWithRetry`: three attempts; after that the leak is logged and the restart goes on.
async fn stop_with_retry(state: &AppState, backend: &dyn Provisioner, id: Uuid) {
    let instance = match store::provisioning::instance_id(&state.db, id).await {
        Ok(Some(instance)) => instance,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(workspace_id = %id, %error, "restart: instance lookup failed");
            return;
        }
    };
    let mut delays = STOP_RETRY_DELAYS.iter();
    loop {
        match backend.stop(id, &instance).await {
            Ok(()) => return,
            Err(error) => match delays.next() {
                Some(delay) => tokio::time::sleep(*delay).await,
                None => {
                    tracing::warn!(workspace_id = %id, attempts = 3, last_err = %error, "LEAK-SUSPECT stop failed");
                    return;
                }
            },
        }
    }
}

/// Stops the instances of `ids` once each (pause, hibernate); the failures, as
/// `<id>: <error>` lines for the caller.
pub async fn stop_instances(state: &AppState, ids: &[Uuid]) -> Vec<String> {
    let mut instances = Vec::new();
    for &id in ids {
        match store::provisioning::instance_id(&state.db, id).await {
            Ok(Some(instance_id)) => instances.push(Instance {
                workspace_id: id,
                instance_id,
            }),
            Ok(None) => {}
            Err(error) => return vec![format!("{id}: {error}")],
        }
    }
    stop_all(state, &instances).await
}

/// Stops each instance once (no retry: the caller reports the failures, as delete does).
pub async fn stop_all(state: &AppState, instances: &[Instance]) -> Vec<String> {
    let Some(backend) = state.provisioning.backend() else {
        return Vec::new();
    };
    let mut failures = Vec::new();
    for instance in instances {
        let id = instance.workspace_id;
        if let Err(error) = backend.stop(id, &instance.instance_id).await {
            failures.push(format!("{id}: {error}"));
        }
    }
    failures
}

/// Sets a stopped status (`paused`, `hibernated`) and records its event in one transaction.
pub async fn record_stopped(
    state: &AppState,
    id: Uuid,
    status: &str,
    event: &str,
    payload: &Value,
) -> Result<(), StoreError> {
    let mut tx = state.db.begin().await?;
    store::provisioning::set_stopped(&mut *tx, id, status).await?;
    store::events::record(&mut *tx, event, Some(id), payload).await?;
    tx.commit().await?;
    Ok(())
}

/// Restarts that a committed transaction asked for: [`PendingRestarts::dispatch`] them after
/// the commit, so the restart reads what the transaction wrote.
#[must_use = "dispatch the restarts once the transaction is committed"]
#[derive(Debug, Default)]
pub struct PendingRestarts(Vec<Uuid>);

impl PendingRestarts {
    pub fn dispatch(self, state: &AppState) {
        for id in self.0 {
            spawn_restart(state, id);
        }
    }
}

/// A change of model, provider or secret asks the workspaces `ids` to restart: with a
/// provisioner, each provisioned workspace (not external, paused, hibernated or removed) goes
/// `provisioning` in the caller's transaction and restarts once [`PendingRestarts::dispatch`]ed;
/// the others, and every workspace without a provisioner, get a `WORKSPACE_RESTART_REQUESTED`
/// record with `payload`. A workspace already in `pending` (several keys of one write) restarts
/// once.
pub async fn request_restart(
    provisioning: &Provisioning,
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
    payload: &Value,
    pending: &mut PendingRestarts,
) -> Result<(), StoreError> {
    for &id in ids {
        if pending.0.contains(&id) {
            continue;
        }
        if provisioning.backend().is_some() && restartable(conn, id, &mut pending.0).await? {
            continue;
        }
        store::events::record(&mut *conn, "WORKSPACE_RESTART_REQUESTED", Some(id), payload).await?;
    }
    Ok(())
}

/// Begins the restart of `id` when its state allows one; whether it did.
async fn restartable(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    pending: &mut Vec<Uuid>,
) -> Result<bool, StoreError> {
    let Some(target) = store::provisioning::target(&mut *conn, id).await? else {
        return Ok(false);
    };
    let skipped = ["removed", "paused", "hibernated", "hibernating"];
    if target.runtime == "external" || skipped.contains(&target.status.as_str()) {
        return Ok(false);
    }
    if begin(conn, id, &target.name, target.tier, &target.runtime).await? {
        pending.push(id);
        return Ok(true);
    }
    Ok(false)
}

/// Restarts a workspace found not running: `provisioning` with its event, then stop and
/// provision in the background.
pub async fn restart_offline(state: &AppState, id: Uuid) -> Result<(), StoreError> {
    let Some(target) = store::provisioning::target(&state.db, id).await? else {
        return Ok(());
    };
    let mut tx = state.db.begin().await?;
    let begun = begin(&mut tx, id, &target.name, target.tier, &target.runtime).await?;
    tx.commit().await?;
    if begun {
        spawn_restart(state, id);
    }
    Ok(())
}

/// The backend, shared (for handlers that call it directly).
pub fn backend(state: &AppState) -> Option<Arc<dyn Provisioner>> {
    state.provisioning.backend().cloned()
}
