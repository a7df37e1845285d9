-- History of every resync request (the seeds' DISBatchHistory), in the state database.
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

-- Who runs a request, so a dead run's batch is closed as abandoned (plugins/campus_sync/liveness.py):
-- {"backend_pid", "backend_start", "host", "pid"} for a one-process run, {"dag_id", "run_id"} for
-- an Airflow DAG run. Status also takes 'abandoned'.
ALTER TABLE sync.batch ADD COLUMN IF NOT EXISTS owner jsonb;
CREATE INDEX IF NOT EXISTS batch_running_idx ON sync.batch (id) WHERE status = 'running';
-- The gray rows (objects not finished), found by every reap (liveness.py) without a scan.
CREATE INDEX IF NOT EXISTS batch_result_gray_idx ON sync.batch_result (batch_id) WHERE status = 'gray';
