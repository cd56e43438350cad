-- Settings: the per-workspace config document (`GET|PATCH /workspaces/{id}/config`).
-- The secrets and token tables (`workspace_secrets`, `global_secrets`, `workspace_auth_tokens`,
-- `org_api_tokens`) are already in the baseline. `IF NOT EXISTS` everywhere: a database written by
-- the Go original already has this table (its migration 006_workspace_config_memory.sql), with
-- this shape, and is adopted as it is.

CREATE TABLE IF NOT EXISTS workspace_config (
  workspace_id uuid PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  data         jsonb NOT NULL DEFAULT '{}',
  updated_at   timestamptz NOT NULL DEFAULT now()
);
