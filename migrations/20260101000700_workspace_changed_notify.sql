-- Every change to the rows behind `GET /workspaces/{id}` (the workspace and its canvas layout) is
-- announced on the `workspace_changed` channel with the workspace id as payload, so that each
-- replica's read cache drops that workspace's entry. A TRUNCATE announces an empty payload, which
-- clears the whole cache. NEW is NULL on DELETE and OLD on INSERT, hence the COALESCE.

CREATE OR REPLACE FUNCTION notify_workspace_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('workspace_changed', COALESCE(NEW.id::text, OLD.id::text, ''));
  RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION notify_workspace_layout_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('workspace_changed',
                    COALESCE(NEW.workspace_id::text, OLD.workspace_id::text, ''));
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS workspaces_notify_changed ON workspaces;
CREATE TRIGGER workspaces_notify_changed
  AFTER INSERT OR UPDATE OR DELETE ON workspaces
  FOR EACH ROW EXECUTE FUNCTION notify_workspace_changed();

DROP TRIGGER IF EXISTS workspaces_notify_truncated ON workspaces;
CREATE TRIGGER workspaces_notify_truncated
  AFTER TRUNCATE ON workspaces
  FOR EACH STATEMENT EXECUTE FUNCTION notify_workspace_changed();

DROP TRIGGER IF EXISTS canvas_layouts_notify_changed ON canvas_layouts;
CREATE TRIGGER canvas_layouts_notify_changed
  AFTER INSERT OR UPDATE OR DELETE ON canvas_layouts
  FOR EACH ROW EXECUTE FUNCTION notify_workspace_layout_changed();

DROP TRIGGER IF EXISTS canvas_layouts_notify_truncated ON canvas_layouts;
CREATE TRIGGER canvas_layouts_notify_truncated
  AFTER TRUNCATE ON canvas_layouts
  FOR EACH STATEMENT EXECUTE FUNCTION notify_workspace_layout_changed();
