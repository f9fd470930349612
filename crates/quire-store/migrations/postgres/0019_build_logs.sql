-- A build's log: the lines its command printed, in chunks of consecutive lines (numbered
-- from 1 across the build's attempts), each chunk's lines a JSON array of
-- [milliseconds since the epoch, "out" | "err", text]. Removed with the build's context.
CREATE TABLE build_logs (
    context_id TEXT NOT NULL,
    first_line BIGINT NOT NULL,
    line_count INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (context_id, first_line)
);
