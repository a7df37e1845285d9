-- History of every resync request (Campus's DISBatchHistory), in the state database.
-- Idempotent: run on every schema check.
CREATE SCHEMA IF NOT EXISTS sync;

-- One row per request: full, partial, state_request, selective, verification.
CREATE TABLE IF NOT EXISTS sync.batch (
    id                 bigserial PRIMARY KEY,
    kind               text NOT NULL,
    status             text NOT NULL DEFAULT 'running',   -- running | complete | failed
    requested_by       text NOT NULL,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    school_year        text NOT NULL DEFAULT 'current',   -- current | previous | next
    end_year           integer,
    check_dependencies boolean NOT NULL DEFAULT true,
    districts          text[] NOT NULL DEFAULT '{}',
    objects            text[] NOT NULL DEFAULT '{}',
    dag_id             text,
    run_id             text,
    details            jsonb NOT NULL DEFAULT '{}',
    UNIQUE (dag_id, run_id)
);

-- One row per object and district of a request. errors = refused + failed rows;
-- error_reasons counts each reason; status: gray while running, then green/yellow/red,
-- failed (the object's load rolled back) or not_run (an ancestor failed).
CREATE TABLE IF NOT EXISTS sync.batch_result (
    batch_id      bigint NOT NULL REFERENCES sync.batch (id) ON DELETE CASCADE,
    district_id   text NOT NULL,
    object        text NOT NULL,
    status        text NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    processed     integer NOT NULL DEFAULT 0,
    errors        integer NOT NULL DEFAULT 0,
    inserted      integer NOT NULL DEFAULT 0,
    updated       integer NOT NULL DEFAULT 0,
    deleted       integer NOT NULL DEFAULT 0,
    unchanged     integer NOT NULL DEFAULT 0,
    excluded      integer NOT NULL DEFAULT 0,
    error_reasons jsonb NOT NULL DEFAULT '{}',
    message       text,
    PRIMARY KEY (batch_id, district_id, object)
);
CREATE INDEX IF NOT EXISTS batch_result_last_idx ON sync.batch_result (district_id, object, started_at DESC);

-- Who runs a request, so a dead run's batch is closed as abandoned (plugins/campus_sync/tools/liveness.py):
-- {"backend_pid", "backend_start", "host", "pid"} for a one-process run, {"dag_id", "run_id"} for
-- an Airflow DAG run. Status also takes 'abandoned'.
-- Added only where missing: ALTER TABLE takes an exclusive lock even when the column is there,
-- which would wait for every open read of the history and hold up every writer behind it.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'sync.batch'::regclass AND attname = 'owner'
                                                AND NOT attisdropped) THEN
        ALTER TABLE sync.batch ADD COLUMN owner jsonb;
    END IF;
END
$do$;
CREATE INDEX IF NOT EXISTS batch_running_idx ON sync.batch (id) WHERE status = 'running';
-- The gray rows (objects not finished), found by every reap (liveness.py) without a scan.
CREATE INDEX IF NOT EXISTS batch_result_gray_idx ON sync.batch_result (batch_id) WHERE status = 'gray';

-- The last finished result of every district, object and school year of a resync (full, partial,
-- state_request), kept apart from the request history: Clear History deletes requests, not this,
-- so the Resync view's Last Resync / Processed / Errors still describe the data at the state.
-- Written by a trigger whenever a result row is written (every writer: the DAG's tasks,
-- liveness), so it cannot be forgotten; an older result recorded late never replaces a newer one.
CREATE TABLE IF NOT EXISTS sync.last_result (
    district_id   text NOT NULL,
    object        text NOT NULL,
    end_year      integer NOT NULL,
    batch_id      bigint NOT NULL,          -- no foreign key: the request may have been cleared
    kind          text NOT NULL,
    requested_by  text NOT NULL,
    status        text NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    processed     integer NOT NULL DEFAULT 0,
    errors        integer NOT NULL DEFAULT 0,
    error_reasons jsonb NOT NULL DEFAULT '{}',
    message       text,
    PRIMARY KEY (district_id, object, end_year)
);

CREATE OR REPLACE FUNCTION sync.keep_last_result() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO sync.last_result AS l (district_id, object, end_year, batch_id, kind, requested_by, status,
                                       started_at, finished_at, processed, errors, error_reasons, message)
    SELECT NEW.district_id, NEW.object, b.end_year, NEW.batch_id, b.kind, b.requested_by, NEW.status,
           NEW.started_at, NEW.finished_at, NEW.processed, NEW.errors, NEW.error_reasons, NEW.message
      FROM sync.batch b
     WHERE b.id = NEW.batch_id AND b.end_year IS NOT NULL AND b.kind IN ('full', 'partial', 'state_request')
    ON CONFLICT (district_id, object, end_year) DO UPDATE SET
           batch_id = EXCLUDED.batch_id, kind = EXCLUDED.kind, requested_by = EXCLUDED.requested_by,
           status = EXCLUDED.status, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
           processed = EXCLUDED.processed, errors = EXCLUDED.errors, error_reasons = EXCLUDED.error_reasons,
           message = EXCLUDED.message
     WHERE l.batch_id = EXCLUDED.batch_id OR l.started_at <= EXCLUDED.started_at;
    RETURN NULL;
END
$fn$;

-- Created once (a trigger's CREATE locks the table: not at every schema check while syncs write),
-- filled from the history there is at that moment.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'batch_result_keep_last'
                                             AND tgrelid = 'sync.batch_result'::regclass) THEN
        CREATE TRIGGER batch_result_keep_last AFTER INSERT OR UPDATE ON sync.batch_result
            FOR EACH ROW WHEN (NEW.status <> 'gray' AND NEW.started_at IS NOT NULL)
            EXECUTE FUNCTION sync.keep_last_result();
        INSERT INTO sync.last_result (district_id, object, end_year, batch_id, kind, requested_by, status,
                                      started_at, finished_at, processed, errors, error_reasons, message)
        SELECT DISTINCT ON (r.district_id, r.object, b.end_year)
               r.district_id, r.object, b.end_year, r.batch_id, b.kind, b.requested_by, r.status,
               r.started_at, r.finished_at, r.processed, r.errors, r.error_reasons, r.message
          FROM sync.batch_result r JOIN sync.batch b ON b.id = r.batch_id
         WHERE r.status <> 'gray' AND r.started_at IS NOT NULL AND b.end_year IS NOT NULL
           AND b.kind IN ('full', 'partial', 'state_request')
         ORDER BY r.district_id, r.object, b.end_year, r.started_at DESC
        ON CONFLICT DO NOTHING;
    END IF;
END
$do$;
