-- Agent messaging: token usage recorded by the A2A proxy, and the busy queue.
--
-- Shapes of the Go original (`migrations/025_workspace_token_usage.up.sql`,
-- `migrations/042_a2a_queue.up.sql` at 624ef4d0). A database adopted from the original already
-- has both tables, hence IF NOT EXISTS throughout.

CREATE TABLE IF NOT EXISTS workspace_token_usage (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id       uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  period_start       timestamptz NOT NULL,
  input_tokens       bigint NOT NULL DEFAULT 0,
  output_tokens      bigint NOT NULL DEFAULT 0,
  call_count         integer NOT NULL DEFAULT 0,
  estimated_cost_usd numeric(12,6) NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workspace_id, period_start)
);

CREATE TABLE IF NOT EXISTS a2a_queue (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  caller_id       uuid,
  priority        smallint NOT NULL DEFAULT 50,
  body            jsonb NOT NULL,
  method          text,
  idempotency_key text,
  enqueued_at     timestamptz NOT NULL DEFAULT now(),
  dispatched_at   timestamptz,
  completed_at    timestamptz,
  expires_at      timestamptz,
  attempts        integer NOT NULL DEFAULT 0,
  status          text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'dispatched', 'completed', 'dropped', 'failed')),
  last_error      text
);

CREATE INDEX IF NOT EXISTS idx_a2a_queue_dispatch
  ON a2a_queue (workspace_id, priority DESC, enqueued_at ASC) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS idx_a2a_queue_expiry
  ON a2a_queue (expires_at) WHERE status = 'queued' AND expires_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_a2a_queue_idempotency
  ON a2a_queue (workspace_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'dispatched');

-- Live events too large for a NOTIFY payload (8000 bytes), kept just long enough for every
-- replica's hub to load them by the id the announcement carries (agent replies often are).
CREATE TABLE IF NOT EXISTS large_announcements (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type   text NOT NULL,
  workspace_id uuid NOT NULL,
  payload      jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_large_announcements_created
  ON large_announcements (created_at);
