-- A workspace's own prompt templates, every version kept (the template is JSON the AI layer reads).
CREATE TABLE prompt_templates (
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, name, version)
);
