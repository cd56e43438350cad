//! A workspace's budget (`handlers/budget.go` at 624ef4d0) and today's token usage
//! (`handlers/workspace_metrics.go`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Days, Utc};
use serde_json::{Map, Value};
use store::budget::Budget;

use super::parse_object;
use super::types::{BudgetPatch, BudgetView, UsageView};
use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::WorkspaceId;
use crate::{ApiError, AppState};

impl From<Budget> for BudgetView {
    fn from(budget: Budget) -> Self {
        BudgetView {
            budget_limit: budget.budget_limit,
            monthly_spend: budget.monthly_spend,
            budget_remaining: budget
                .budget_limit
                .map(|limit| limit.saturating_sub(budget.monthly_spend)),
        }
    }
}

fn workspace_not_found() -> ApiError {
    ApiError::NotFound("workspace not found".to_string())
}

/// The budget of a workspace that is not removed.
#[utoipa::path(get, path = "/workspaces/{id}/budget", tag = "budget",
    params(("id" = uuid::Uuid, Path)), responses(
    (status = 200, description = "Limit, spend and remainder (USD cents)", body = BudgetView),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown or removed", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn get_budget(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> ApiResult<Json<BudgetView>> {
    let budget = store::budget::get(&state.db, id)
        .await
        .map_err(ApiError::internal("query failed"))?
        .ok_or_else(workspace_not_found)?;
    Ok(Json(budget.into()))
}

/// Sets the ceiling (`{"budget_limit": <cents>}`) or clears it (`{"budget_limit": null}`).
#[utoipa::path(patch, path = "/workspaces/{id}/budget", tag = "budget",
    params(("id" = uuid::Uuid, Path)), request_body = BudgetPatch, responses(
    (status = 200, description = "The budget as stored", body = BudgetView),
    (status = 400, description = "Invalid id or budget_limit", body = ErrorBody),
    (status = 401, description = "Not an admin", body = ErrorBody),
    (status = 404, description = "Unknown or removed", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn patch_budget(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    body: Bytes,
) -> ApiResult<Json<BudgetView>> {
    let body: Option<Map<String, Value>> = parse_object(&body, "invalid request body")?;
    let limit = parse_budget_limit(body.as_ref())?;
    let budget = store::budget::set_limit(&state.db, id, limit)
        .await
        .map_err(ApiError::internal("update failed"))?
        .ok_or_else(workspace_not_found)?;
    Ok(Json(budget.into()))
}

/// The new ceiling from the body, with the original's checks (`handlers/budget.go:98-121`): the
/// key is required, `null` clears, a number must be `>= 0` and is truncated toward zero.
fn parse_budget_limit(body: Option<&Map<String, Value>>) -> Result<Option<i64>, ApiError> {
    let bad = |message: &str| ApiError::BadRequest(message.to_string());
    let Some(value) = body.and_then(|body| body.get("budget_limit")) else {
        return Err(bad("budget_limit field is required"));
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(number) => match number.as_f64() {
            Some(cents) if cents < 0.0 => Err(bad("budget_limit must be >= 0 (USD cents)")),
            // Exact for integers; a fraction is truncated as Go's int64(float64) does.
            Some(cents) => Ok(Some(number.as_i64().unwrap_or(cents as i64))),
            None => Err(bad("budget_limit must be an integer (USD cents) or null")),
        },
        _ => Err(bad("budget_limit must be an integer (USD cents) or null")),
    }
}

/// Today's (UTC) LLM token usage of a workspace, removed ones included.
#[utoipa::path(get, path = "/workspaces/{id}/metrics", tag = "budget",
    params(("id" = uuid::Uuid, Path)), responses(
    (status = 200, description = "Today's usage (zeros when none)", body = UsageView),
    (status = 400, description = "Invalid id", body = ErrorBody),
    (status = 401, description = "Not this workspace", body = ErrorBody),
    (status = 404, description = "Unknown workspace", body = ErrorBody),
    (status = 503, description = "Datastore unavailable", body = ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> ApiResult<Json<UsageView>> {
    let exists = store::budget::workspace_exists(&state.db, id)
        .await
        .map_err(ApiError::internal("failed to verify workspace"))?;
    if !exists {
        return Err(workspace_not_found());
    }
    let period_start = today_utc();
    let period_end = period_start + Days::new(1);
    let usage = store::budget::usage(&state.db, id, period_start)
        .await
        .map_err(ApiError::internal("failed to fetch metrics"))?;
    Ok(Json(UsageView {
        estimated_cost_usd: format!("{:.6}", usage.estimated_cost_usd),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        period_end: seconds_utc(period_end),
        period_start: seconds_utc(period_start),
        total_calls: usage.call_count,
    }))
}

/// The start of the current UTC day: the key of `workspace_token_usage` rows.
pub fn today_utc() -> DateTime<Utc> {
    let midnight = Utc::now().date_naive().and_time(chrono::NaiveTime::MIN);
    midnight.and_utc()
}

fn seconds_utc(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limit(body: Value) -> Result<Option<i64>, String> {
        let body = body.as_object().cloned();
        parse_budget_limit(body.as_ref()).map_err(|e| e.to_string())
    }

    #[test]
    fn budget_limits_follow_the_original() {
        assert_eq!(limit(json!({"budget_limit": 500})), Ok(Some(500)));
        assert_eq!(limit(json!({"budget_limit": 12.9})), Ok(Some(12)));
        assert_eq!(limit(json!({"budget_limit": 0})), Ok(Some(0)));
        assert_eq!(limit(json!({"budget_limit": null})), Ok(None));
        let required = Err("budget_limit field is required".to_string());
        assert_eq!(limit(json!({})), required);
        assert_eq!(limit(Value::Null), required);
        let negative = Err("budget_limit must be >= 0 (USD cents)".to_string());
        assert_eq!(limit(json!({"budget_limit": -1})), negative);
        assert_eq!(limit(json!({"budget_limit": -0.5})), negative);
        let typed = Err("budget_limit must be an integer (USD cents) or null".to_string());
        for wrong in [json!("5"), json!(true), json!([1]), json!({"cents": 1})] {
            assert_eq!(limit(json!({ "budget_limit": wrong })), typed);
        }
    }

    #[test]
    fn periods_are_utc_midnights_at_second_precision() {
        let start = today_utc();
        assert_eq!(seconds_utc(start).len(), "2026-05-06T00:00:00Z".len());
        assert!(seconds_utc(start).ends_with("T00:00:00Z"));
    }
}
