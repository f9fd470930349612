-- The CRDT state of each document: a snapshot (a merged Yjs update) and the log of updates
-- accepted since, appended before any client sees them.
CREATE TABLE doc_updates (
    document_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    data        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (document_id, seq)
);
CREATE TABLE doc_snapshots (
    document_id TEXT PRIMARY KEY,
    data        BLOB NOT NULL,
    through_seq INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
