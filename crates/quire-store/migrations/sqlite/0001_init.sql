-- Workspaces, documents and the event outbox. Times are milliseconds since the Unix epoch.
CREATE TABLE workspaces (
    id             TEXT PRIMARY KEY,
    slug           TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    owner_id       TEXT,
    document_count INTEGER NOT NULL DEFAULT 0,
    revision       INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    deleted_at     INTEGER
);
CREATE INDEX workspaces_by_name ON workspaces (name, id);
CREATE INDEX workspaces_by_created ON workspaces (created_at, id);
CREATE INDEX workspaces_by_updated ON workspaces (updated_at, id);

CREATE TABLE documents (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    metadata     TEXT NOT NULL DEFAULT '{}',
    owner_id     TEXT,
    revision     INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE INDEX documents_by_title ON documents (workspace_id, title, id);
CREATE INDEX documents_by_created ON documents (workspace_id, created_at, id);
CREATE INDEX documents_by_updated ON documents (workspace_id, updated_at, id);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    workspace_id TEXT,
    document_id  TEXT,
    actor        TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX events_by_workspace ON events (workspace_id, id);
