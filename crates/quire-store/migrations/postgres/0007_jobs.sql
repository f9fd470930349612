-- The pipeline engine: contexts (jobs), their event streams, workers, queues, cron
-- schedules and templates. JSON columns are TEXT; times are milliseconds since the epoch.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    kind             TEXT COLLATE "C" NOT NULL,
    queue            TEXT NOT NULL,
    status           TEXT NOT NULL,
    pipeline         TEXT NOT NULL,
    input            TEXT NOT NULL,
    data             TEXT NOT NULL,
    processing       TEXT,
    progress         TEXT,
    error            TEXT,
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key  TEXT,
    fingerprint      TEXT NOT NULL,
    event_seq        BIGINT NOT NULL DEFAULT 0,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE status IN ('pending', 'retrying');
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE status = 'processing';
CREATE INDEX jobs_by_owner ON jobs (lease_owner) WHERE status = 'processing';
CREATE INDEX jobs_by_workspace ON jobs (workspace_id, created_at, id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- No foreign key to jobs: a context's events are written with its row (under its lock)
-- and deleted with it by the purge; checking the key on every insert cost a quarter of a
-- finish's time on PostgreSQL.
CREATE TABLE job_events (
    job_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Limits that hold across every worker process: at most max_running contexts of a queue run at once.
CREATE TABLE job_queues (
    name        TEXT PRIMARY KEY,
    max_running INTEGER
);

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    queues       TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT
);

CREATE TABLE job_schedules (
    name        TEXT PRIMARY KEY,
    cron        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    data        TEXT NOT NULL,
    queue       TEXT NOT NULL,
    next_run_at BIGINT NOT NULL,
    last_run_at BIGINT
);

CREATE TABLE templates (
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    workspace_id TEXT,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    tone         TEXT,
    description  TEXT NOT NULL,
    sections     TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX templates_by_kind ON templates (kind, tone);

