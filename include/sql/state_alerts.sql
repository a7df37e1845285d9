-- Process alerts (the Campus Process Alerts inbox), in the state database.
-- Idempotent: run on every schema check (schema.history_ddl runs every state_*.sql file).
CREATE SCHEMA IF NOT EXISTS sync;

-- One row per alert and district. A state-initiated resync creates one "State Resync Requested"
-- alert (category "Vertical Interoperability") per district involved, in the same transaction as
-- its sync.batch row (dag_id, run_id identify that batch). The alert deliberately does not name
-- the objects: a district sees that a resync was requested, and when, not what.
CREATE TABLE IF NOT EXISTS sync.process_alert (
    id           bigserial PRIMARY KEY,
    district_id  text NOT NULL,
    category     text NOT NULL,
    name         text NOT NULL,
    message      text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL DEFAULT now(),
    dag_id       text,
    run_id       text,
    UNIQUE (name, dag_id, run_id, district_id)
);
CREATE INDEX IF NOT EXISTS process_alert_district_idx ON sync.process_alert (district_id, requested_at DESC);
