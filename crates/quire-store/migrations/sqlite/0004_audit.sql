-- The audit trail: one row per state-changing or denied request.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    status      INTEGER NOT NULL,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    summary     TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX audit_log_by_at ON audit_log (at, id);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at);
