-- Where each durable outbox consumer (search indexer, notifier, webhooks, …) has read to.
CREATE TABLE consumer_offsets (
    consumer   TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
