//! The two projections of a workspace row on the wire. Fields are in alphabetical order, as the
//! original printed its maps.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use store::workspaces::WorkspaceRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::json::{go_float, go_time_opt};

/// The admin projection of a row (`GET /workspaces`).
#[derive(Debug, Serialize, ToSchema)]
pub struct FullView {
    pub active_tasks: i32,
    pub agent_card: Option<Value>,
    pub budget_limit: Option<i64>,
    pub collapsed: bool,
    pub current_task: String,
    pub id: Uuid,
    #[serde(serialize_with = "go_float")]
    pub last_error_rate: f64,
    pub last_sample_error: String,
    pub max_concurrent_tasks: i32,
    pub monthly_spend: i64,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub role: Option<String>,
    pub runtime: String,
    pub status: String,
    pub tier: i32,
    pub uptime_seconds: i32,
    pub url: String,
    pub workspace_dir: Option<String>,
    #[serde(serialize_with = "go_float")]
    pub x: f64,
    #[serde(serialize_with = "go_float")]
    pub y: f64,
}

impl From<&WorkspaceRow> for FullView {
    fn from(row: &WorkspaceRow) -> Self {
        FullView {
            active_tasks: row.active_tasks,
            agent_card: row.agent_card.clone(),
            budget_limit: row.budget_limit,
            collapsed: row.collapsed,
            current_task: row.current_task.clone(),
            id: row.id,
            last_error_rate: row.last_error_rate,
            last_sample_error: row.last_sample_error.clone(),
            max_concurrent_tasks: row.max_concurrent_tasks,
            monthly_spend: row.monthly_spend,
            name: row.name.clone(),
            parent_id: row.parent_id,
            role: role(row),
            runtime: row.runtime.clone(),
            status: row.status.to_string(),
            tier: row.tier,
            uptime_seconds: row.uptime_seconds,
            url: row.url.clone(),
            workspace_dir: row.workspace_dir.clone(),
            x: row.x,
            y: row.y,
        }
    }
}

/// The open projection of `GET /workspaces/{id}`: no budget, spend, current task, sample error
/// or workspace dir; plus `last_outbound_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicView {
    pub active_tasks: i32,
    pub agent_card: Option<Value>,
    pub collapsed: bool,
    pub id: Uuid,
    #[serde(serialize_with = "go_float")]
    pub last_error_rate: f64,
    #[serde(serialize_with = "go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_outbound_at: Option<DateTime<Utc>>,
    pub max_concurrent_tasks: i32,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub role: Option<String>,
    pub runtime: String,
    pub status: String,
    pub tier: i32,
    pub uptime_seconds: i32,
    pub url: String,
    #[serde(serialize_with = "go_float")]
    pub x: f64,
    #[serde(serialize_with = "go_float")]
    pub y: f64,
}

impl From<&WorkspaceRow> for PublicView {
    fn from(row: &WorkspaceRow) -> Self {
        PublicView {
            active_tasks: row.active_tasks,
            agent_card: row.agent_card.clone(),
            collapsed: row.collapsed,
            id: row.id,
            last_error_rate: row.last_error_rate,
            last_outbound_at: row.last_outbound_at,
            max_concurrent_tasks: row.max_concurrent_tasks,
            name: row.name.clone(),
            parent_id: row.parent_id,
            role: role(row),
            runtime: row.runtime.clone(),
            status: row.status.to_string(),
            tier: row.tier,
            uptime_seconds: row.uptime_seconds,
            url: row.url.clone(),
            x: row.x,
            y: row.y,
        }
    }
}

/// `role` is `null` when empty or NULL.
fn role(row: &WorkspaceRow) -> Option<String> {
    row.role.clone().filter(|r| !r.is_empty())
}
