-- Workspaces, documents and the event outbox. Times are milliseconds since the Unix epoch.
-- Names and titles use the "C" collation so that ordering matches SQLite's byte order.
CREATE TABLE workspaces (
    id             TEXT PRIMARY KEY,
    slug           TEXT NOT NULL UNIQUE,
    name           TEXT COLLATE "C" NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    owner_id       TEXT,
    document_count BIGINT NOT NULL DEFAULT 0,
    revision       BIGINT NOT NULL DEFAULT 1,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE INDEX workspaces_by_name ON workspaces (name, id);
CREATE INDEX workspaces_by_created ON workspaces (created_at, id);
CREATE INDEX workspaces_by_updated ON workspaces (updated_at, id);

CREATE TABLE documents (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    kind         TEXT NOT NULL,
    title        TEXT COLLATE "C" NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}',
    owner_id     TEXT,
    revision     BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX documents_by_title ON documents (workspace_id, title, id);
CREATE INDEX documents_by_created ON documents (workspace_id, created_at, id);
CREATE INDEX documents_by_updated ON documents (workspace_id, updated_at, id);

CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    workspace_id TEXT,
    document_id  TEXT,
    actor        TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_by_workspace ON events (workspace_id, id);
