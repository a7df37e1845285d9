-- Verification Summary: district vs state, per district and object, kept so the
-- latest summary can be shown without recomputing. Idempotent: run on every schema check.
-- Definitions (plugins/campus_sync/tools/verify.py):
--   at_district   rows the object's extract returns for the district (current school year for
--                 objects tied to one), including rows the state refuses
--   refused       of those, rows the state refuses by rule (the extract's reject_reason), rows
--                 with a NULL or duplicated key (null_key, duplicate_key, as the sync refuses
--                 them) and rows whose parent is neither at the district nor at the state; not
--                 expected at the state
--   at_state      state rows of the district (and year)
--   missing       expected rows not at the state (by key); extra: state rows not expected;
--   different     same key, different content
--   distinct      distinct keys over expected and state rows = expected + extra
--   total_errors  missing + extra + different
--   accuracy      100 * (distinct - total_errors) / distinct, rounded down to 2 decimals
--                 (100 when distinct = 0), so 100.00 always means no error
CREATE SCHEMA IF NOT EXISTS sync;

CREATE TABLE IF NOT EXISTS sync.verification_run (
    id               bigserial PRIMARY KEY,
    requested_by     text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    end_year         integer NOT NULL,
    districts        text[] NOT NULL DEFAULT '{}',
    heal             boolean NOT NULL DEFAULT false,   -- this run was asked to heal
    previous_run_id  bigint REFERENCES sync.verification_run (id) ON DELETE SET NULL,  -- re-verify after heal
    dag_id           text,
    run_id           text,
    details          jsonb NOT NULL DEFAULT '{}'   -- heal_keys, unhealable; errors: {district: message}
);

CREATE TABLE IF NOT EXISTS sync.verification_result (
    run_id        bigint NOT NULL REFERENCES sync.verification_run (id) ON DELETE CASCADE,
    district_id   text NOT NULL,
    object        text NOT NULL,
    distinct_rows integer NOT NULL,
    at_district   integer NOT NULL,
    at_state      integer NOT NULL,
    refused       integer NOT NULL,
    missing       integer NOT NULL,
    extra         integer NOT NULL,
    different     integer NOT NULL,
    total_errors  integer NOT NULL,
    accuracy      numeric(5, 2) NOT NULL,
    unhealable    integer NOT NULL DEFAULT 0,       -- errors a selective sync cannot repair
    verified_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, district_id, object)
);
CREATE INDEX IF NOT EXISTS verification_result_latest_idx
    ON sync.verification_result (district_id, verified_at DESC);

-- A sample of the mismatched records per object (first 20 by issue and key), for finding IDs.
CREATE TABLE IF NOT EXISTS sync.verification_issue (
    run_id      bigint NOT NULL,
    district_id text NOT NULL,
    object      text NOT NULL,
    issue       text NOT NULL,                 -- missing | extra | different
    key_text    text NOT NULL,                 -- the row's key value(s), '|'-separated
    heal_key    bigint,                        -- the personID/enrollmentID a selective sync takes
    PRIMARY KEY (run_id, district_id, object, issue, key_text),
    FOREIGN KEY (run_id, district_id, object)
        REFERENCES sync.verification_result (run_id, district_id, object) ON DELETE CASCADE
);
