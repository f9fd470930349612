-- Where each durable outbox consumer (search indexer, notifier, webhooks, …) has read to.
CREATE TABLE consumer_offsets (
    consumer   TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
