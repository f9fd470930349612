-- The CRDT state of each document: a snapshot (a merged Yjs update) and the log of updates
-- accepted since, appended before any client sees them.
CREATE TABLE doc_updates (
    document_id TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (document_id, seq)
);
CREATE TABLE doc_snapshots (
    document_id TEXT PRIMARY KEY,
    data        BYTEA NOT NULL,
    through_seq BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
