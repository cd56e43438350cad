//! `GET /workspaces/{id}/terminal/diagnose`: the terminal's setup steps, each with its duration
//! and error, in the original's shape (`handlers/terminal_diagnose.go:116-135` at 624ef4d0).

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use eic_pool::{DiagnoseStep, Step};
use serde::Serialize;
use utoipa::ToSchema;

use super::{NO_INSTANCE, check_caller};
use crate::auth::OrgCaller;
use crate::error::{ApiResult, ErrorBody, StoreContext};
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

/// The whole diagnosis can take no longer than this (`terminal_diagnose.go:74`).
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The report, keys in the original's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnosis {
    workspace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
    remote: bool,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_failure: Option<String>,
    steps: Vec<DiagnosisStep>,
}

/// One step: the passed ones and the first failing one.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosisStep {
    name: String,
    ok: bool,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /workspaces/{id}/terminal/diagnose`.
#[utoipa::path(get, path = "/workspaces/{id}/terminal/diagnose", tag = "terminal",
    params(("id" = Uuid, Path)), responses(
    (status = 200, description = "The setup steps with their durations and the first failure", body = Diagnosis),
    (status = 400, description = "Invalid workspace id", body = ErrorBody),
    (status = 401, description = "Missing or invalid workspace auth", body = ErrorBody),
    (status = 403, description = "The claimed caller may not reach this workspace", body = ErrorBody),
    (status = 404, description = "Workspace not found", body = ErrorBody)))]
pub async fn diagnose(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    headers: HeaderMap,
    org: Option<Extension<OrgCaller>>,
) -> ApiResult<Json<Diagnosis>> {
    check_caller(&state, &headers, id, org.is_some(), "diagnose").await?;
    let target = store::file_targets::lookup(&state.db, id)
        .await
        .context("query failed")?
        .ok_or_else(ApiError::workspace_not_found)?;
    let (instance_id, steps) = if target.instance_id.is_empty() {
        (None, vec![failed("instance", NO_INSTANCE.to_string())])
    } else {
        let steps = match &state.eic {
            None => vec![failed(
                "eic",
                "EIC is not configured on this server".to_string(),
            )],
            Some(pool) => {
                match tokio::time::timeout(DIAGNOSE_TIMEOUT, pool.diagnose(&target.instance_id))
                    .await
                {
                    Ok(steps) => steps.iter().map(step_of).collect(),
                    Err(_) => vec![failed(
                        "diagnose",
                        "diagnosis timed out after 30s".to_string(),
                    )],
                }
            }
        };
        (Some(target.instance_id), steps)
    };
    let first_failure = steps.iter().find(|s| !s.ok).map(|s| s.name.clone());
    Ok(Json(Diagnosis {
        workspace_id: id.to_string(),
        remote: instance_id.is_some(),
        instance_id,
        ok: first_failure.is_none(),
        first_failure,
        steps,
    }))
}

fn failed(name: &str, error: String) -> DiagnosisStep {
    DiagnosisStep {
        name: name.to_string(),
        ok: false,
        duration_ms: 0,
        error: Some(error),
    }
}

/// The pool's step under the original's name where one exists. The error is the step's own
/// message (never the remote host's text; that is logged).
fn step_of(step: &DiagnoseStep) -> DiagnosisStep {
    let name = match step.step {
        Step::Discovery => "discovery",
        Step::KeyPush => "send-ssh-public-key",
        Step::Tunnel => "open-tunnel",
        Step::Ssh => "ssh",
        Step::Shell => "shell",
        Step::Sftp => "sftp",
        Step::Operation => "operation",
    };
    if let Some(error) = &step.error {
        tracing::warn!(step = name, error = %error, cause = ?std::error::Error::source(error), "terminal diagnosis step failed");
    }
    DiagnosisStep {
        name: name.to_string(),
        ok: step.error.is_none(),
        duration_ms: step.duration.as_millis() as u64,
        error: step.error.as_ref().map(ToString::to_string),
    }
}
