-- Selective sync: the outcome of every requested ID of a `selective` batch.
-- The batch itself is a sync.batch row (kind 'selective'; details carry the object, the key
-- column, the keys and "records" ok/total); per-object counts are sync.batch_result rows.
-- Idempotent: run on every schema check. Clearing the history cascades from sync.batch.
CREATE SCHEMA IF NOT EXISTS sync;

CREATE TABLE IF NOT EXISTS sync.selective_key (
    batch_id    bigint NOT NULL REFERENCES sync.batch (id) ON DELETE CASCADE,
    key_value   bigint NOT NULL,                 -- a district personID or enrollmentID
    object      text NOT NULL,                   -- PersonIdentity | Enrollment
    district_id text NOT NULL,
    ok          boolean NOT NULL,                -- found at the district and accepted at the state
    reason      text NOT NULL DEFAULT '',        -- why not: not found at district / refused: ...
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, key_value)
);
