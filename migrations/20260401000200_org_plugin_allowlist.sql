-- The org plugin allowlist (the original's migrations/026_org_plugin_allowlist.up.sql): an org is
-- a workspace id; no rows means every plugin is allowed. IF NOT EXISTS: a database adopted from
-- the Go original already has it, with the same shape.
CREATE TABLE IF NOT EXISTS org_plugin_allowlist (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  plugin_name text NOT NULL,
  enabled_by  text NOT NULL,
  enabled_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, plugin_name)
);
