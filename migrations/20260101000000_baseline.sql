-- Baseline: the final shape of the Go original's in-scope tables, consolidated.
-- A database written by the Go original already has all of this; `workspace-server migrate`
-- records this version as applied there instead of running it (see crates/store/src/adopt.rs).

CREATE TYPE workspace_status AS ENUM (
  'provisioning', 'online', 'offline', 'degraded', 'failed',
  'removed', 'paused', 'hibernated', 'awaiting_agent', 'hibernating'
);

CREATE TABLE workspaces (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                     text NOT NULL,
  role                     text,
  tier                     integer DEFAULT 1,
  status                   workspace_status DEFAULT 'provisioning',
  source_bundle_id         text,
  agent_card               jsonb,
  url                      text,
  parent_id                uuid REFERENCES workspaces(id),
  forwarded_to             uuid REFERENCES workspaces(id),
  last_heartbeat_at        timestamptz,
  last_error_rate          double precision DEFAULT 0,
  last_sample_error        text,
  active_tasks             integer DEFAULT 0,
  uptime_seconds           integer DEFAULT 0,
  created_at               timestamptz DEFAULT now(),
  updated_at               timestamptz DEFAULT now(),
  current_task             text,
  awareness_namespace      text,
  runtime                  text DEFAULT 'langgraph',
  workspace_dir            text,
  workspace_access         varchar(20) NOT NULL DEFAULT 'none'
                             CONSTRAINT workspaces_workspace_access_check
                             CHECK (workspace_access IN ('none', 'read_only', 'read_write')),
  budget_limit             bigint,
  monthly_spend            bigint NOT NULL DEFAULT 0,
  hibernation_idle_minutes integer,
  last_outbound_at         timestamptz,
  max_concurrent_tasks     integer NOT NULL DEFAULT 1,
  instance_id              text,
  platform_inbound_secret  text,
  delivery_mode            text NOT NULL DEFAULT 'push'
                             CONSTRAINT workspaces_delivery_mode_check
                             CHECK (delivery_mode IN ('push', 'poll')),
  runtime_image_digest     text
);

CREATE INDEX idx_workspaces_parent_id ON workspaces (parent_id);
CREATE INDEX idx_workspaces_status ON workspaces (status);
CREATE INDEX idx_workspaces_hibernation ON workspaces (hibernation_idle_minutes)
  WHERE hibernation_idle_minutes IS NOT NULL;
CREATE INDEX idx_workspaces_instance_id ON workspaces (instance_id) WHERE instance_id IS NOT NULL;
CREATE INDEX idx_workspaces_runtime_image_digest ON workspaces (runtime_image_digest)
  WHERE runtime_image_digest IS NOT NULL;
-- Sibling names are unique among live workspaces; root workspaces share the zero-uuid parent.
CREATE UNIQUE INDEX workspaces_parent_name_uniq ON workspaces
  (COALESCE(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name)
  WHERE status <> 'removed';

CREATE TABLE canvas_layouts (
  workspace_id uuid PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
  x            double precision NOT NULL DEFAULT 0,
  y            double precision NOT NULL DEFAULT 0,
  collapsed    boolean DEFAULT false
);

CREATE TABLE workspace_secrets (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id       uuid REFERENCES workspaces(id),
  key                text NOT NULL,
  encrypted_value    bytea NOT NULL,
  created_at         timestamptz DEFAULT now(),
  updated_at         timestamptz DEFAULT now(),
  encryption_version integer NOT NULL DEFAULT 0,
  UNIQUE (workspace_id, key)
);

CREATE TABLE global_secrets (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key                text NOT NULL UNIQUE,
  encrypted_value    bytea NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  encryption_version integer NOT NULL DEFAULT 0
);

CREATE TABLE workspace_auth_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  token_hash   bytea NOT NULL UNIQUE,
  prefix       text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX workspace_auth_tokens_live_idx ON workspace_auth_tokens (workspace_id)
  WHERE revoked_at IS NULL;

CREATE TABLE org_api_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  token_hash   bytea NOT NULL UNIQUE,
  prefix       text NOT NULL,
  name         text,
  created_by   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at   timestamptz,
  org_id       uuid REFERENCES workspaces(id) ON DELETE SET NULL
);
CREATE INDEX org_api_tokens_live_idx ON org_api_tokens (token_hash) WHERE revoked_at IS NULL;
CREATE INDEX org_api_tokens_org_id_idx ON org_api_tokens (org_id) WHERE org_id IS NOT NULL;

CREATE TABLE structure_events (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type   text NOT NULL,
  workspace_id uuid,
  agent_id     uuid,
  target_id    uuid,
  payload      jsonb,
  created_at   timestamptz DEFAULT now()
);
CREATE INDEX idx_structure_events_workspace ON structure_events (workspace_id);
CREATE INDEX idx_structure_events_created ON structure_events (created_at);
