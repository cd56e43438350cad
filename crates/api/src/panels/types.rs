//! Wire shapes of the panel routes. Where the original answered with a Go map (`gin.H`) the
//! fields are declared in alphabetical order, because Go writes map keys sorted; where it
//! answered with a struct they keep the struct's order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::json::{go_float, go_time, go_time_opt};

/// `GET /canvas/viewport`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ViewportView {
    #[serde(serialize_with = "go_float")]
    pub x: f64,
    #[serde(serialize_with = "go_float")]
    pub y: f64,
    #[serde(serialize_with = "go_float")]
    pub zoom: f64,
}

/// The body of `PUT /canvas/viewport`: a missing or `null` number is 0, as Go leaves it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ViewportBody {
    #[serde(default)]
    pub x: Option<f64>,
    #[serde(default)]
    pub y: Option<f64>,
    #[serde(default)]
    pub zoom: Option<f64>,
}

/// `{"status": "saved"}` and the like.
#[derive(Debug, Serialize, ToSchema)]
pub struct Saved {
    pub status: &'static str,
}

/// The body of `POST /workspaces/{id}/approvals` (a `null` string is `""`, as Go binds it).
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewApprovalBody {
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Any JSON object; stored as JSON `null` when absent, as the original does.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub context: Option<serde_json::Map<String, Value>>,
}

/// 201 of `POST /workspaces/{id}/approvals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalCreated {
    pub approval_id: Uuid,
    pub status: &'static str,
}

/// One request of `GET /workspaces/{id}/approvals`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub action: String,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "go_time_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub id: Uuid,
    pub reason: Option<String>,
    pub status: String,
    pub task_id: Option<String>,
}

/// One request of `GET /approvals/pending`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingApprovalView {
    pub action: String,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
    pub reason: Option<String>,
    pub status: String,
    pub workspace_id: Uuid,
    pub workspace_name: String,
}

/// The body of `POST /workspaces/{id}/approvals/{approvalId}/decide`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DecisionBody {
    /// `approved` or `denied`.
    #[serde(default)]
    pub decision: Option<String>,
    /// Who decided; `human` when absent or empty.
    #[serde(default)]
    pub decided_by: Option<String>,
}

/// 200 of a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    pub approval_id: Uuid,
    pub status: String,
}

/// `GET`/`PATCH /workspaces/{id}/budget` (USD cents; `null` limit and remainder: no limit).
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    pub budget_limit: Option<i64>,
    pub monthly_spend: i64,
    /// `budget_limit - monthly_spend`, negative when over budget.
    pub budget_remaining: Option<i64>,
}

/// The body of `PATCH /workspaces/{id}/budget`.
#[derive(Debug, ToSchema)]
pub struct BudgetPatch {
    /// USD cents, `>= 0`; `null` clears the limit. The key is required.
    pub budget_limit: Option<i64>,
}

/// `GET /workspaces/{id}/metrics`: today's (UTC) token usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// USD with exactly six decimals.
    pub estimated_cost_usd: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// The next UTC midnight, RFC 3339 at second precision.
    pub period_end: String,
    /// Today's UTC midnight, RFC 3339 at second precision.
    pub period_start: String,
    pub total_calls: i64,
}

/// One row of the audit ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: String,
    #[serde(serialize_with = "go_time")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    pub agent_id: String,
    pub session_id: String,
    pub operation: String,
    pub input_hash: Option<String>,
    pub output_hash: Option<String>,
    pub model_used: Option<String>,
    pub human_oversight_flag: bool,
    pub risk_flag: bool,
    pub prev_hmac: Option<String>,
    pub hmac: String,
    pub workspace_id: Uuid,
}

impl From<store::audit::AuditEvent> for AuditEventView {
    fn from(row: store::audit::AuditEvent) -> Self {
        AuditEventView {
            id: row.id,
            timestamp: row.timestamp,
            agent_id: row.agent_id,
            session_id: row.session_id,
            operation: row.operation,
            input_hash: row.input_hash,
            output_hash: row.output_hash,
            model_used: row.model_used,
            human_oversight_flag: row.human_oversight_flag,
            risk_flag: row.risk_flag,
            prev_hmac: row.prev_hmac,
            hmac: row.hmac,
            workspace_id: row.workspace_id,
        }
    }
}

/// `GET /workspaces/{id}/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// `null` when the page is not the first (`offset > 0`) or `AUDIT_LEDGER_SALT` is unset.
    pub chain_valid: Option<bool>,
    /// `null` (not `[]`) when no row matches, as the original answers.
    pub events: Option<Vec<AuditEventView>>,
    /// Every matching row, whatever `limit` and `offset`.
    pub total: i64,
}
