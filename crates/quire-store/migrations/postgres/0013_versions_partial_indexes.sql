-- The history writer looks, after each version, for versions still whole past the archive
-- limit and for versions not yet committed: both are few however long the history, and
-- these indexes hold only them (a scan of every version made it slower with each one).
CREATE INDEX document_versions_whole ON document_versions (document_id, seq) WHERE content IS NOT NULL;
CREATE INDEX document_versions_uncommitted ON document_versions (workspace_id, created_at, document_id, seq)
    WHERE commit_hash IS NULL;
