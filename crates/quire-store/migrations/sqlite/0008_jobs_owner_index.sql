-- A worker's running contexts are few: the heartbeat, cancel checks and stop find them
-- through jobs_leased (running rows only). An index on the owner cost every claim an
-- index entry, and the planner chose it for finishes where it held entries for thousands
-- of rows long finished.
DROP INDEX jobs_by_owner;
