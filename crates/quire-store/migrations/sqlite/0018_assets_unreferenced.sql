-- Since when nothing names an asset (no document, no version of one, no context): the
-- collector marks it, and removes it once it has stayed unnamed for the grace period. NULL
-- while something names it.
ALTER TABLE assets ADD COLUMN unreferenced_since BIGINT;
