-- Channels an org template declares for a workspace (telegram, slack, lark, discord), recorded by
-- `POST /org/import` for the channels work to come (the original's
-- `workspace-server/migrations/016_workspace_channels.sql` at 624ef4d0: one row per workspace and
-- channel type).
CREATE TABLE IF NOT EXISTS workspace_channels (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id   uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  channel_type   text NOT NULL,
  channel_config jsonb NOT NULL DEFAULT '{}'::jsonb,
  enabled        boolean NOT NULL DEFAULT true,
  allowed_users  jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workspace_id, channel_type)
);
