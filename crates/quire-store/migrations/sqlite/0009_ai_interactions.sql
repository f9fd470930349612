-- The AI interactions log: one row per provider call.
CREATE TABLE ai_interactions (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    actor            TEXT NOT NULL,
    context_id       TEXT,
    kind             TEXT NOT NULL,
    template         TEXT,
    template_version INTEGER,
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    parameters       TEXT NOT NULL,
    prompt           TEXT NOT NULL,
    tokens_in        BIGINT,
    tokens_out       BIGINT,
    latency_ms       BIGINT NOT NULL,
    first_chunk_ms   BIGINT,
    status           TEXT NOT NULL,
    error            TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX ai_interactions_by_workspace ON ai_interactions (workspace_id, id);
