SELECT m.id, m.workspace_id, m.content, m.scope, m.namespace, m.created_at
-- The query is parsed once, not once per row as a parameter's function call would be
-- in a generic plan; a join keeps the index condition on it.
FROM plainto_tsquery('english', $4) AS q (words)
JOIN agent_memories m ON m.content_tsv @@ q.words
WHERE CASE $2::text
        WHEN 'LOCAL' THEN m.workspace_id = $1 AND m.scope = 'LOCAL'
        -- the caller's team: its parent and the parent's children, or the
        -- caller and its children when it is a root
        WHEN 'TEAM' THEN m.scope = 'TEAM' AND m.workspace_id IN (
                           SELECT w.id FROM workspaces w, workspaces caller
                           WHERE caller.id = $1 AND w.status <> 'removed'
                             AND COALESCE(caller.parent_id, caller.id)
                                 IN (w.parent_id, w.id))
        WHEN 'GLOBAL' THEN m.scope = 'GLOBAL'
        ELSE m.workspace_id = $1
      END
  AND ($3::text IS NULL OR m.namespace = $3)
ORDER BY ts_rank(m.content_tsv, q.words) DESC, m.created_at DESC
LIMIT $5
