-- The agents' side: the activity log the agents report into, and the live event stream.
--
-- `activity_logs` has the Go original's final shape for the columns our routes use. A database
-- adopted from the original already has the table, hence IF NOT EXISTS throughout.

CREATE TABLE IF NOT EXISTS activity_logs (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  activity_type   text NOT NULL,
  source_id       uuid,
  target_id       uuid,
  method          text,
  summary         text,
  request_body    jsonb,
  response_body   jsonb,
  duration_ms     integer,
  status          text DEFAULT 'ok',
  error_detail    text,
  created_at      timestamptz DEFAULT now(),
  tool_trace      jsonb,
  idempotency_key text
);

CREATE INDEX IF NOT EXISTS idx_activity_ws_type_time
  ON activity_logs (workspace_id, activity_type, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_activity_ws_time
  ON activity_logs (workspace_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_activity_ws_source
  ON activity_logs (workspace_id, source_id, created_at DESC) WHERE source_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_activity_ws_target
  ON activity_logs (workspace_id, target_id, created_at DESC) WHERE target_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_activity_logs_idempotency
  ON activity_logs (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The liveness loop looks for live workspaces whose last heartbeat is older than the TTL.
CREATE INDEX IF NOT EXISTS idx_workspaces_live_heartbeat
  ON workspaces (last_heartbeat_at) WHERE status IN ('online', 'degraded');

-- Every recorded event is announced on the `structure_events` channel so that every replica's
-- hub (LISTEN structure_events) can fan it out to its live subscribers. NOTIFY payloads are
-- limited to 8000 bytes: a large row is announced by id only and the listener fetches it.
CREATE OR REPLACE FUNCTION notify_structure_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  message text;
BEGIN
  message := json_build_object(
    'id', NEW.id,
    'event_type', NEW.event_type,
    'workspace_id', NEW.workspace_id,
    'payload', NEW.payload,
    'created_at', NEW.created_at
  )::text;
  IF octet_length(message) > 7000 THEN
    message := json_build_object('id', NEW.id)::text;
  END IF;
  PERFORM pg_notify('structure_events', message);
  RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS structure_events_notify ON structure_events;
CREATE TRIGGER structure_events_notify
  AFTER INSERT ON structure_events
  FOR EACH ROW EXECUTE FUNCTION notify_structure_event();
