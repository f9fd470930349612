-- The audit trail: one row per state-changing or denied request, partitioned by month so
-- that retention drops whole partitions. Partitions are created as rows arrive; the default
-- partition catches anything outside them, so an insert never fails for want of one.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    status      BIGINT NOT NULL,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    summary     TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (at, id)
) PARTITION BY RANGE (at);
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
CREATE INDEX audit_log_by_actor ON audit_log (actor, at);
