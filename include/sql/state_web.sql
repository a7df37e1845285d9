-- Indexes for the Resync State Data page (plugins/campus_sync/web/data.py). Idempotent.
-- At 170 districts x 60 objects x 52 weekly batches (~530k batch_result rows) every page query
-- reads an index range, never the whole table (see `campus-sync bench web`).
CREATE SCHEMA IF NOT EXISTS sync;

-- History, newest first, one page at a time (ORDER BY requested_at DESC, id DESC LIMIT/OFFSET).
CREATE INDEX IF NOT EXISTS batch_requested_idx ON sync.batch (requested_at DESC, id DESC);
-- Selective Sync's own history (kind = 'selective'), newest first.
CREATE INDEX IF NOT EXISTS batch_kind_requested_idx ON sync.batch (kind, requested_at DESC, id DESC);
-- The Resync view's Last Resync per object and district uses batch_result_last_idx
-- (district_id, object, started_at DESC) from state_history.sql.
