-- Bytes a workspace keeps (generated images), once per content.
CREATE TABLE blobs (
    workspace_id TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    size         BIGINT NOT NULL,
    bytes        BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, sha256)
);
