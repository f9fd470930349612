-- How many times a context was claimed. It only grows, so it fences a worker's lease: 'attempts'
-- goes back to 0 on a retry and down by one when a worker stops, and an old holder of the
-- lease could match a later claim on it.
ALTER TABLE jobs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
