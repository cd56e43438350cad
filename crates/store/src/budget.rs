//! A workspace's monthly budget (`workspaces.budget_limit`, `monthly_spend`, USD cents) and its
//! daily LLM token usage (`workspace_token_usage`).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The most tokens one call may add (the original's sanity cap, `workspace_metrics.go:103`).
pub const MAX_TOKENS_PER_CALL: i64 = 10_000_000;
/// USD per input and per output token (the original's fixed Claude Sonnet rates).
pub const COST_PER_INPUT_TOKEN: f64 = 0.000003;
pub const COST_PER_OUTPUT_TOKEN: f64 = 0.000015;

/// A workspace's budget ceiling (`None`: no limit) and what it spent this month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub budget_limit: Option<i64>,
    pub monthly_spend: i64,
}

/// The budget of a workspace that is not removed.
pub async fn get(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Budget>, StoreError> {
    let row = sqlx::query_as!(
        Budget,
        r#"SELECT budget_limit, COALESCE(monthly_spend, 0) AS "monthly_spend!"
           FROM workspaces WHERE id = $1 AND status <> 'removed'"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Sets (or, with `None`, clears) the ceiling of a workspace that is not removed; returns the
/// budget as stored, `None` when there is no such workspace.
pub async fn set_limit(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    budget_limit: Option<i64>,
) -> Result<Option<Budget>, StoreError> {
    let row = sqlx::query_as!(
        Budget,
        r#"UPDATE workspaces SET budget_limit = $2, updated_at = now()
           WHERE id = $1 AND status <> 'removed'
           RETURNING budget_limit, COALESCE(monthly_spend, 0) AS "monthly_spend!""#,
        id,
        budget_limit
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// Whether the workspace row exists at all (removed ones included, as the metrics route counts
/// them).
pub async fn workspace_exists(executor: impl PgExecutor<'_>, id: Uuid) -> Result<bool, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(executor)
    .await?;
    Ok(exists)
}

/// Token usage summed over one period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub call_count: i64,
    pub estimated_cost_usd: f64,
}

/// The usage recorded for the period starting at `period_start` (zeros when none).
pub async fn usage(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    period_start: DateTime<Utc>,
) -> Result<Usage, StoreError> {
    let row = sqlx::query_as!(
        Usage,
        r#"SELECT COALESCE(SUM(input_tokens), 0)::bigint AS "input_tokens!",
                  COALESCE(SUM(output_tokens), 0)::bigint AS "output_tokens!",
                  COALESCE(SUM(call_count), 0)::bigint AS "call_count!",
                  COALESCE(SUM(estimated_cost_usd), 0)::float8 AS "estimated_cost_usd!"
           FROM workspace_token_usage
           WHERE workspace_id = $1 AND period_start = $2"#,
        workspace_id,
        period_start
    )
    .fetch_one(executor)
    .await?;
    Ok(row)
}

/// Adds one call's tokens to the workspace's row for `period_start` (the original's
/// `upsertTokenUsage`): each count is clamped to 0..=[`MAX_TOKENS_PER_CALL`], the cost is
/// estimated at the fixed rates, and a call reporting no tokens at all records nothing.
pub async fn add_usage(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    period_start: DateTime<Utc>,
    input_tokens: i64,
    output_tokens: i64,
) -> Result<(), StoreError> {
    let input = input_tokens.clamp(0, MAX_TOKENS_PER_CALL);
    let output = output_tokens.clamp(0, MAX_TOKENS_PER_CALL);
    if input == 0 && output == 0 {
        return Ok(());
    }
    let cost = input as f64 * COST_PER_INPUT_TOKEN + output as f64 * COST_PER_OUTPUT_TOKEN;
    sqlx::query!(
        "INSERT INTO workspace_token_usage
           (workspace_id, period_start, input_tokens, output_tokens, call_count,
            estimated_cost_usd, updated_at)
         VALUES ($1, $2, $3, $4, 1, $5::float8::numeric, now())
         ON CONFLICT (workspace_id, period_start) DO UPDATE SET
           input_tokens = workspace_token_usage.input_tokens + EXCLUDED.input_tokens,
           output_tokens = workspace_token_usage.output_tokens + EXCLUDED.output_tokens,
           call_count = workspace_token_usage.call_count + 1,
           estimated_cost_usd = workspace_token_usage.estimated_cost_usd
                                + EXCLUDED.estimated_cost_usd,
           updated_at = now()",
        workspace_id,
        period_start,
        input,
        output,
        cost
    )
    .execute(executor)
    .await?;
    Ok(())
}
