-- The canvas's side panels: the saved viewport, approval requests, token usage and the audit
-- ledger. Each table has the Go original's name and column shapes (its migrations
-- 005_canvas_layouts.sql, 007_approvals.sql, 025_workspace_token_usage.up.sql and
-- 030_audit_events.up.sql at 624ef4d0), so a database written by the Go server already has them:
-- hence IF NOT EXISTS throughout, and an adopted database keeps its rows.

-- One viewport for the whole tenant; the original upserts the fixed id
-- 00000000-0000-0000-0000-000000000001.
CREATE TABLE IF NOT EXISTS canvas_viewport (
  id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  x        double precision NOT NULL DEFAULT 0,
  y        double precision NOT NULL DEFAULT 0,
  zoom     double precision NOT NULL DEFAULT 1,
  saved_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS approval_requests (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid REFERENCES workspaces(id),
  task_id      text,
  action       text NOT NULL,
  reason       text,
  context      jsonb DEFAULT '{}',
  status       text DEFAULT 'pending'
                 CHECK (status IN ('pending', 'approved', 'denied', 'escalated')),
  decided_by   text,
  decided_at   timestamptz,
  created_at   timestamptz DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_approvals_workspace ON approval_requests (workspace_id);
CREATE INDEX IF NOT EXISTS idx_approvals_status ON approval_requests (status);

-- UTC-day aggregates of the LLM tokens an agent's answers reported.
CREATE TABLE IF NOT EXISTS workspace_token_usage (
  id                 uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id       uuid          NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  period_start       timestamptz   NOT NULL,
  input_tokens       bigint        NOT NULL DEFAULT 0,
  output_tokens      bigint        NOT NULL DEFAULT 0,
  call_count         integer       NOT NULL DEFAULT 0,
  estimated_cost_usd numeric(12,6) NOT NULL DEFAULT 0,
  updated_at         timestamptz   NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS workspace_token_usage_ws_period
  ON workspace_token_usage (workspace_id, period_start);

-- The agents' append-only, HMAC-chained ledger (written by the agents' runtime, read here).
CREATE TABLE IF NOT EXISTS audit_events (
  id                   text        NOT NULL,
  timestamp            timestamptz NOT NULL,
  agent_id             text        NOT NULL,
  session_id           text        NOT NULL,
  operation            text        NOT NULL,
  input_hash           text,
  output_hash          text,
  model_used           text,
  human_oversight_flag boolean     NOT NULL DEFAULT false,
  risk_flag            boolean     NOT NULL DEFAULT false,
  prev_hmac            text,
  hmac                 text        NOT NULL,
  workspace_id         uuid        NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  CONSTRAINT audit_events_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_audit_events_agent_id ON audit_events (agent_id);
CREATE INDEX IF NOT EXISTS idx_audit_events_session_id ON audit_events (session_id);
CREATE INDEX IF NOT EXISTS idx_audit_events_workspace ON audit_events (workspace_id);
CREATE INDEX IF NOT EXISTS idx_audit_events_timestamp ON audit_events (timestamp DESC);
