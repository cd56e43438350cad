-- Chat attachments staged for poll-mode agents, and the durable delegations ledger.
--
-- Shapes of the Go original (`migrations/20260505100000_pending_uploads.up.sql`,
-- `migrations/20260505200000_pending_uploads_acked_index.up.sql`, `migrations/049_delegations.up.sql`
-- at 624ef4d0). A database adopted from the original already has both tables, hence IF NOT EXISTS
-- throughout.

CREATE TABLE IF NOT EXISTS pending_uploads (
  file_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL,
  content      bytea NOT NULL,
  size_bytes   bigint NOT NULL CHECK (size_bytes > 0 AND size_bytes <= 26214400),
  filename     text NOT NULL CHECK (length(filename) > 0 AND length(filename) <= 100),
  mimetype     text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  fetched_at   timestamptz,
  acked_at     timestamptz,
  expires_at   timestamptz NOT NULL DEFAULT (now() + interval '24 hours')
);
CREATE INDEX IF NOT EXISTS idx_pending_uploads_workspace_unacked
  ON pending_uploads (workspace_id, created_at) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_pending_uploads_expires
  ON pending_uploads (expires_at) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_pending_uploads_acked
  ON pending_uploads (acked_at) WHERE acked_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS delegations (
  delegation_id   text PRIMARY KEY,
  caller_id       uuid NOT NULL,
  callee_id       uuid NOT NULL,
  task_preview    text NOT NULL,
  status          text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'dispatched', 'in_progress', 'completed', 'failed', 'stuck')),
  last_heartbeat  timestamptz,
  deadline        timestamptz NOT NULL DEFAULT (now() + interval '6 hours'),
  result_preview  text,
  error_detail    text,
  retry_count     integer NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  idempotency_key text
);
CREATE INDEX IF NOT EXISTS idx_delegations_inflight_heartbeat
  ON delegations (last_heartbeat NULLS FIRST) WHERE status IN ('queued', 'dispatched', 'in_progress');
CREATE INDEX IF NOT EXISTS idx_delegations_caller_created ON delegations (caller_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_delegations_callee_created ON delegations (callee_id, created_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS idx_delegations_idempotency
  ON delegations (caller_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
