-- Every memory search reads the full-text GIN index, and a GIN index's pending list (its
-- `fastupdate` buffer of recent inserts) is scanned linearly by every search until a vacuum merges
-- it: with 100,000 fresh memories that is most of a search's time. Memories are searched far more
-- often than written, so inserts go straight into the index instead.
ALTER INDEX IF EXISTS idx_memories_fts SET (fastupdate = off);

-- Merge what is already pending (a database adopted from an earlier version).
SELECT gin_clean_pending_list(i.oid)
FROM pg_class i
JOIN pg_am am ON am.oid = i.relam
WHERE i.relname = 'idx_memories_fts' AND i.relkind = 'i' AND am.amname = 'gin';
