//! The control API under `/_sim/`: fault injection, counters, and the endpoint the sshds'
//! `AuthorizedKeysCommand` asks.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use eic_sim::wire::{Faults, FaultsPatch, SimStatus};
use serde::Deserialize;
use serde_json::json;

use crate::state::Sim;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/status", get(status))
        .route("/_sim/faults", get(faults).post(set_faults))
        .route("/_sim/tunnels/drop", post(drop_tunnels))
        .route("/_sim/keys/expire", post(expire_keys))
        .route("/_sim/instances/{id}/sshd/stop", post(stop_sshd))
        .route("/_sim/instances/{id}/sshd/start", post(start_sshd))
        .route("/_sim/internal/authorized-keys", get(authorized_keys))
}

async fn status(State(sim): State<Arc<Sim>>) -> Json<SimStatus> {
    Json(sim.status().await)
}

async fn faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    Json(sim.faults())
}

async fn set_faults(State(sim): State<Arc<Sim>>, Json(patch): Json<FaultsPatch>) -> Json<Faults> {
    let faults = sim.update_faults(|f| f.apply(patch));
    tracing::info!(?faults, "faults updated");
    Json(faults)
}

async fn drop_tunnels(State(sim): State<Arc<Sim>>) -> Json<serde_json::Value> {
    let count = sim.drop_tunnels(None);
    tracing::info!(count, "tunnels dropped");
    Json(json!({ "count": count }))
}

async fn expire_keys(State(sim): State<Arc<Sim>>) -> Json<serde_json::Value> {
    let count = sim.expire_keys();
    tracing::info!(count, "keys expired");
    Json(json!({ "count": count }))
}

async fn stop_sshd(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let Some(instance) = sim.instances.get(&id) else {
        return unknown_instance(&id);
    };
    let mut sshd = instance.sshd.lock().await;
    sshd.stop().await;
    // Its sessions die with it, as when an instance's sshd goes away.
    sim.drop_tunnels(Some(&id));
    Json(json!({ "instance_id": id, "sshd_running": false })).into_response()
}

async fn start_sshd(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let Some(instance) = sim.instances.get(&id) else {
        return unknown_instance(&id);
    };
    match instance.sshd.lock().await.start().await {
        Ok(()) => Json(json!({ "instance_id": id, "sshd_running": true })).into_response(),
        Err(error) => {
            tracing::error!(instance_id = id, "cannot start sshd: {error:#}");
            let body = Json(json!({ "error": format!("cannot start sshd: {error:#}") }));
            (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
        }
    }
}

fn unknown_instance(id: &str) -> Response {
    let body = Json(json!({ "error": format!("no instance {id}") }));
    (StatusCode::NOT_FOUND, body).into_response()
}

#[derive(Deserialize)]
struct KeysQuery {
    instance: String,
    user: String,
}

/// `authorized_keys` lines for sshd (public keys only).
async fn authorized_keys(State(sim): State<Arc<Sim>>, Query(query): Query<KeysQuery>) -> String {
    let keys = sim.authorized_keys(&query.instance, &query.user);
    tracing::debug!(
        instance_id = query.instance,
        user = query.user,
        keys = keys.len(),
        "keys asked"
    );
    keys.iter().map(|k| format!("{k}\n")).collect()
}
