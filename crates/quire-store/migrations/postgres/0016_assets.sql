-- Images a workspace keeps (uploads, generated images): the bytes are in the asset store
-- (local disk or S3) by SHA-256; a row says which workspace holds which, for its quota.
CREATE TABLE assets (
    workspace_id    TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size            BIGINT NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    name            TEXT NOT NULL,
    origin          TEXT NOT NULL,
    -- JSON array of the thumbnails ({variant, sha256, width, height, size}); [] until made.
    thumbnails      TEXT NOT NULL DEFAULT '[]',
    thumbnails_size BIGINT NOT NULL DEFAULT 0,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, sha256)
);
CREATE INDEX assets_by_time ON assets (workspace_id, created_at DESC, sha256);
-- Which workspaces still hold an object (the collector of unreferenced objects asks).
CREATE INDEX assets_by_sha ON assets (sha256);
