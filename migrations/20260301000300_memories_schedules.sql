-- Memories (v1 rows, the key-value store) and cron schedules, in the Go original's shapes
-- (its migrations 006, 008, 015, 017, 022, 023 and 032 at 624ef4d0). IF NOT EXISTS throughout:
-- a database adopted from the Go server already has these tables and keeps its rows.

CREATE TABLE IF NOT EXISTS agent_memories (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid REFERENCES workspaces(id),
  content      text NOT NULL,
  scope        varchar(10) NOT NULL CHECK (scope IN ('LOCAL', 'TEAM', 'GLOBAL')),
  created_at   timestamptz DEFAULT now(),
  updated_at   timestamptz DEFAULT now(),
  namespace    varchar(50) NOT NULL DEFAULT 'general',
  content_tsv  tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX IF NOT EXISTS idx_memories_workspace ON agent_memories (workspace_id);
CREATE INDEX IF NOT EXISTS idx_memories_scope ON agent_memories (scope);
CREATE INDEX IF NOT EXISTS idx_memories_fts ON agent_memories USING GIN (content_tsv);
CREATE INDEX IF NOT EXISTS idx_memories_ns ON agent_memories (workspace_id, namespace);
-- Listing one workspace's newest rows without a sort over all of them.
CREATE INDEX IF NOT EXISTS idx_memories_workspace_created
  ON agent_memories (workspace_id, created_at DESC);

CREATE TABLE IF NOT EXISTS workspace_memory (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  key          text NOT NULL,
  value        jsonb NOT NULL,
  expires_at   timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  version      bigint NOT NULL DEFAULT 1,
  UNIQUE (workspace_id, key)
);
CREATE INDEX IF NOT EXISTS idx_workspace_memory_workspace ON workspace_memory (workspace_id);

CREATE TABLE IF NOT EXISTS workspace_schedules (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id           uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  name                   text NOT NULL DEFAULT '',
  cron_expr              text NOT NULL,
  timezone               text NOT NULL DEFAULT 'UTC',
  prompt                 text NOT NULL,
  enabled                boolean NOT NULL DEFAULT true,
  last_run_at            timestamptz,
  next_run_at            timestamptz,
  run_count              integer NOT NULL DEFAULT 0,
  last_status            text DEFAULT '',
  last_error             text DEFAULT '',
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  source                 text NOT NULL DEFAULT 'runtime' CHECK (source IN ('template', 'runtime')),
  consecutive_empty_runs integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_schedules_workspace ON workspace_schedules (workspace_id);
CREATE INDEX IF NOT EXISTS idx_schedules_next_run ON workspace_schedules (enabled, next_run_at)
  WHERE enabled;
CREATE UNIQUE INDEX IF NOT EXISTS idx_schedules_workspace_name
  ON workspace_schedules (workspace_id, name);

-- A schedule's history is read by (workspace, activity type, schedule id).
CREATE INDEX IF NOT EXISTS idx_activity_cron_schedule
  ON activity_logs (workspace_id, (request_body->>'schedule_id'), created_at DESC)
  WHERE activity_type = 'cron_run';
