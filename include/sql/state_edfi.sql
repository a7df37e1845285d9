-- The Ed-Fi Resync's state in the state database (plugins/campus_sync/edfi/resync.py). Idempotent.
CREATE SCHEMA IF NOT EXISTS edfi;

-- What was sent successfully, per configuration, resource and natural key: the document's hash
-- and the id the Ed-Fi API gave it. Only a 2xx answer writes a row, so a failed document goes
-- again next run. The Campus ids say which request scope a document belongs to (deletes only
-- within the scope); source_id is the Campus row it came from (a new natural key for the same
-- row is a key change: DELETE, then POST).
CREATE TABLE IF NOT EXISTS edfi.send_log (
    configuration text NOT NULL,
    resource      text NOT NULL,
    natural_key   text NOT NULL,
    source_id     text NOT NULL,
    school_id     bigint,
    person_id     bigint,
    course_id     bigint,
    section_id    bigint,
    hash          text NOT NULL,
    api_id        text,
    batch_id      bigint,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (configuration, resource, natural_key)
);
CREATE INDEX IF NOT EXISTS send_log_source_idx ON edfi.send_log (configuration, resource, source_id);

-- Each document that failed in a request: its natural key, the HTTP status and the API's message
-- (the fields of a 400, the reference of a 409). The rows of a request Clear History removed are
-- dropped when the next resync starts.
CREATE TABLE IF NOT EXISTS edfi.failed_document (
    batch_id      bigint NOT NULL,
    resource      text NOT NULL,
    operation     text NOT NULL,          -- post | delete | cleanup
    natural_key   text,
    source_id     text,
    reason        text NOT NULL,
    http_status   integer,
    message       text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS failed_document_batch_idx ON edfi.failed_document (batch_id, resource);

-- The (configuration, school, resource) combinations a running resync holds: read only for
-- others. A row counts only while its request runs (sync.batch.status = 'running'); a request
-- whose run died is closed as abandoned by the liveness check, which frees its rows.
CREATE TABLE IF NOT EXISTS edfi.resync_lock (
    configuration text NOT NULL,
    school_id     bigint NOT NULL,
    resource      text NOT NULL,
    batch_id      bigint NOT NULL,
    PRIMARY KEY (configuration, school_id, resource)
);

-- The Ed-Fi API token shared by the tasks of resyncs (each Airflow task is a process): an ODS/API
-- refuses a client more than a few live tokens. A bearer credential valid until expires_at only;
-- expired rows are removed when a new token is stored.
CREATE TABLE IF NOT EXISTS edfi.api_token (
    oauth_url   text NOT NULL,
    client_key  text NOT NULL,
    token       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (oauth_url, client_key)
);
