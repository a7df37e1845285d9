-- District-only tables (created at the district with the object tables, never synced as objects).
-- Idempotent: run by schema.ensure_district_schema after the hierarchy's tables.

-- Daily attendance, one row per enrollment, day and period: what Campus's attendance
-- aggregation (AttDayAggregation) is computed from. A district's nightly job aggregates only
-- the prior day's changes; a backdated change (a past date edited today) reaches
-- AttDayAggregation only through the Attendance Aggregation Refresh.
CREATE TABLE IF NOT EXISTS campus.attendance (
    attendanceID     integer PRIMARY KEY,
    enrollmentID     integer NOT NULL,
    personID         integer NOT NULL,
    calendarID       integer NOT NULL,
    endYear          integer NOT NULL,
    date             date NOT NULL,
    periodID         integer NOT NULL,
    scheduledMinutes integer NOT NULL CHECK (scheduledMinutes >= 0),
    presentMinutes   integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('P', 'A', 'T')),  -- present, absent, tardy
    excuseID         integer,                                          -- AttendanceExcuse
    modifiedDate     timestamptz NOT NULL DEFAULT now(),
    CHECK (presentMinutes BETWEEN 0 AND scheduledMinutes),
    UNIQUE (enrollmentID, date, periodID)
);
CREATE INDEX IF NOT EXISTS attendance_year_idx ON campus.attendance (endYear, enrollmentID, date);
