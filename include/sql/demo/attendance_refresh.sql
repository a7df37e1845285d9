-- The demo districts' Attendance Aggregation Refresh, created by `campus-sync demo seed`.
-- Real districts have their own routine; the deployment names the statement to call in
-- include/config/*.yaml (`attendance_refresh: {sql: ...}`), by default:
--   SELECT * FROM campus.refresh_attendance_aggregation(%(end_year)s)
--
-- Recomputes AttDayAggregation for one school year (by end year) from every daily attendance
-- record of that year, whatever its date or when it was changed, so backdated changes are
-- included. An aggregate keeps its aggregationID (the state's key) when its values change; only
-- rows whose values differ are written. Returns one row: aggregates recomputed, inserted,
-- updated, deleted.
CREATE OR REPLACE FUNCTION campus.refresh_attendance_aggregation(p_end_year integer)
RETURNS TABLE (rows_recomputed integer, rows_inserted integer, rows_updated integer, rows_deleted integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    n_all integer;
    n_ins integer;
    n_upd integer;
    n_del integer;
BEGIN
    IF p_end_year IS NULL THEN
        RAISE EXCEPTION 'refresh_attendance_aggregation: end year is NULL';
    END IF;
    -- two refreshes of the same year never interleave (the second waits, then sees the first's rows)
    PERFORM pg_advisory_xact_lock(hashtext('campus.refresh_attendance_aggregation'), p_end_year);
    WITH fresh AS (
        SELECT a.enrollmentid, min(a.personid) AS personid, min(a.calendarid) AS calendarid, a.date,
               sum(a.presentminutes)::integer AS minutespresent,
               sum(a.scheduledminutes - a.presentminutes)::integer AS minutesabsent,
               (array_agg(a.excuseid ORDER BY a.periodid)
                    FILTER (WHERE a.excuseid IS NOT NULL AND a.presentminutes < a.scheduledminutes))[1] AS excuseid
          FROM campus.attendance a
         WHERE a.endyear = p_end_year
         GROUP BY a.enrollmentid, a.date
    ), upd AS (
        UPDATE campus.attdayaggregation g
           SET personid = f.personid, calendarid = f.calendarid, minutespresent = f.minutespresent,
               minutesabsent = f.minutesabsent, excuseid = f.excuseid
          FROM fresh f
         WHERE g.endyear = p_end_year AND g.enrollmentid = f.enrollmentid AND g.date = f.date
           AND (g.personid, g.calendarid, g.minutespresent, g.minutesabsent, g.excuseid)
               IS DISTINCT FROM (f.personid, f.calendarid, f.minutespresent, f.minutesabsent, f.excuseid)
        RETURNING 1
    ), ins AS (
        INSERT INTO campus.attdayaggregation
               (aggregationid, enrollmentid, personid, calendarid, endyear, date, minutespresent,
                minutesabsent, excuseid)
        SELECT (SELECT coalesce(max(aggregationid), 0) FROM campus.attdayaggregation)
                   + row_number() OVER (ORDER BY f.enrollmentid, f.date),
               f.enrollmentid, f.personid, f.calendarid, p_end_year, f.date, f.minutespresent,
               f.minutesabsent, f.excuseid
          FROM fresh f
         WHERE NOT EXISTS (SELECT 1 FROM campus.attdayaggregation g
                            WHERE g.endyear = p_end_year AND g.enrollmentid = f.enrollmentid AND g.date = f.date)
        RETURNING 1
    ), del AS (
        DELETE FROM campus.attdayaggregation g
         WHERE g.endyear = p_end_year
           AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.enrollmentid = g.enrollmentid AND f.date = g.date)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM fresh), (SELECT count(*) FROM ins), (SELECT count(*) FROM upd),
           (SELECT count(*) FROM del)
      INTO n_all, n_ins, n_upd, n_del;
    RETURN QUERY SELECT n_all, n_ins, n_upd, n_del;
END
$fn$;
