-- The document a context works on (its data's document_id when submitted), so that a
-- document's drafts are found without reading every context's data; and when and by whom a
-- draft was approved into it.
ALTER TABLE jobs ADD COLUMN document_id TEXT;
ALTER TABLE jobs ADD COLUMN approved_at BIGINT;
ALTER TABLE jobs ADD COLUMN approved_by TEXT;
CREATE INDEX jobs_by_document ON jobs (document_id, created_at) WHERE document_id IS NOT NULL;
