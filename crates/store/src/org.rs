//! What org import writes beyond a plain workspace row: the resume lookup, template schedules,
//! channels, and the preflight's view of the global secrets.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The live workspace named `name` under `parent` (top level when `None`): the node an earlier
/// import already created.
pub async fn live_child(
    executor: impl PgExecutor<'_>,
    parent: Option<Uuid>,
    name: &str,
) -> Result<Option<Uuid>, StoreError> {
    let id = sqlx::query_scalar!(
        "SELECT id FROM workspaces
         WHERE parent_id IS NOT DISTINCT FROM $1 AND name = $2
           AND status IS DISTINCT FROM 'removed'
         ORDER BY created_at LIMIT 1",
        parent,
        name
    )
    .fetch_optional(executor)
    .await?;
    Ok(id)
}

/// The global secret keys holding a non-empty value (the original's preflight query,
/// `handlers/org_import.go:867-888`).
pub async fn configured_global_keys(
    executor: impl PgExecutor<'_>,
) -> Result<Vec<String>, StoreError> {
    let keys = sqlx::query_scalar!(
        "SELECT key FROM global_secrets WHERE octet_length(encrypted_value) > 0 LIMIT 10000"
    )
    .fetch_all(executor)
    .await?;
    Ok(keys)
}

/// A schedule a template declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSchedule<'a> {
    pub workspace_id: Uuid,
    pub name: &'a str,
    pub cron_expr: &'a str,
    pub timezone: &'a str,
    pub prompt: &'a str,
    pub enabled: bool,
    pub next_run_at: DateTime<Utc>,
}

/// Creates a template schedule, or refreshes the one of the same name that a template created
/// (a schedule the agent created itself is left alone).
pub async fn upsert_template_schedule(
    executor: impl PgExecutor<'_>,
    schedule: &TemplateSchedule<'_>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO workspace_schedules
           (workspace_id, name, cron_expr, timezone, prompt, enabled, next_run_at, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'template')
         ON CONFLICT (workspace_id, name) DO UPDATE
           SET cron_expr = EXCLUDED.cron_expr, timezone = EXCLUDED.timezone,
               prompt = EXCLUDED.prompt, enabled = EXCLUDED.enabled,
               next_run_at = EXCLUDED.next_run_at, updated_at = now()
           WHERE workspace_schedules.source = 'template'",
        schedule.workspace_id,
        schedule.name,
        schedule.cron_expr,
        schedule.timezone,
        schedule.prompt,
        schedule.enabled,
        schedule.next_run_at
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Records a channel of a workspace (one per type).
pub async fn upsert_channel(
    executor: impl PgExecutor<'_>,
    workspace_id: Uuid,
    channel_type: &str,
    config: &serde_json::Value,
    enabled: bool,
    allowed_users: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO workspace_channels
           (workspace_id, channel_type, channel_config, enabled, allowed_users)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workspace_id, channel_type) DO UPDATE
           SET channel_config = EXCLUDED.channel_config, enabled = EXCLUDED.enabled,
               allowed_users = EXCLUDED.allowed_users, updated_at = now()",
        workspace_id,
        channel_type,
        config,
        enabled,
        allowed_users
    )
    .execute(executor)
    .await?;
    Ok(())
}
