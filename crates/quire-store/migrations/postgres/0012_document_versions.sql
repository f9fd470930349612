-- Every significant change to a document: its number, message, authors and content (the
-- history repository can be rebuilt from these). Past the archive limit, older contents are
-- kept zlib-compressed in `packed` instead of `content`.
CREATE TABLE document_versions (
    document_id  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    version      TEXT NOT NULL,
    bump         TEXT NOT NULL,
    message      TEXT NOT NULL,
    authors      TEXT NOT NULL,
    name         TEXT,
    commit_hash  TEXT,
    format       TEXT NOT NULL,
    content      TEXT,
    packed       BYTEA,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (document_id, seq),
    UNIQUE (document_id, version)
);
CREATE INDEX document_versions_by_workspace ON document_versions (workspace_id, created_at, document_id, seq);
