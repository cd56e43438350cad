//! The lifecycle routes' request and answer bodies (keys sorted: the original printed maps).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /workspaces/{id}/restart` body; every field optional, a malformed body is ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RestartRequest {
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub apply_template: bool,
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub rebuild_config: bool,
}

/// 200 of a restart.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restarted {
    pub config_dir: String,
    pub reset_session: bool,
    pub status: &'static str,
}

/// 200 of a restart of an external workspace: nothing to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestartNoop {
    pub message: &'static str,
    pub runtime: &'static str,
    pub status: &'static str,
}

/// 200 of a restart, either shape (the schema only: the handler answers one or the other).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RestartAnswer {
    Restarted(Restarted),
    Noop(RestartNoop),
}

/// 200 of a pause.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paused {
    pub paused_count: usize,
    pub status: &'static str,
}

/// 200 of a resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resumed {
    pub resumed_count: usize,
    pub status: &'static str,
}

/// 409 of a hibernate while tasks run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveTasks {
    pub active_tasks: i32,
    pub error: &'static str,
}

/// 200 of the console.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleOutput {
    pub output: String,
}

/// The bootstrap watcher's report.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BootstrapFailure {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub log_tail: String,
}

/// 200 of a bootstrap failure report; `no_change` when the workspace was not provisioning.
#[derive(Debug, Serialize, ToSchema)]
pub struct BootstrapAck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_change: Option<bool>,
    pub ok: bool,
}
