"""The demo's Attendance Aggregation Refresh routine and the package's call of it, on real
PostgreSQL (no Airflow): backdated changes, new and vanished days, other years untouched, the
statement's report read whatever shape a deployment's routine returns."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from attendance_helpers import YEAR

from campus_sync import config
from campus_sync.tools import attendance

pytestmark = pytest.mark.db
AGG = ("SELECT aggregationid, minutespresent, minutesabsent, excuseid FROM campus.attdayaggregation "
       "WHERE enrollmentid = %s AND date = %s")


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def snapshot(dsn, year):
    return q(dsn, "SELECT * FROM campus.attdayaggregation WHERE endyear = %s ORDER BY aggregationid", (year,))


def test_demo_data_is_in_step_and_refresh_recomputes_backdated_changes(nv):
    dsn = nv["districts"]["NV02"]
    stmt = config.DEFAULT_ATTENDANCE_REFRESH_SQL
    n_year = q(dsn, "SELECT count(*) FROM campus.attdayaggregation WHERE endyear = %s", (YEAR,))[0][0]
    assert n_year > 0 and q(dsn, "SELECT count(*) FROM campus.attendance")[0][0] == 2 * nv["counts"]["NV02"][
        "AttDayAggregation"]  # two periods a day
    before, previous = snapshot(dsn, YEAR), snapshot(dsn, YEAR - 1)

    # the seeded aggregates are what the daily records say: the first refresh changes nothing
    assert attendance.refresh(dsn, stmt, end_year=YEAR, district_id="NV02") == \
        {"recomputed": n_year, "inserted": 0, "updated": 0, "deleted": 0}
    assert snapshot(dsn, YEAR) == before

    # a backdated change: a present period of an early day becomes an excused absence, today
    att_id, enr, day, excuse = q(dsn, """
        SELECT a.attendanceid, a.enrollmentid, a.date, x.excuseid
          FROM campus.attendance a JOIN campus.attendanceexcuse x ON x.calendarid = a.calendarid
         WHERE a.endyear = %s AND a.status = 'P' AND a.periodid = 1
           AND NOT EXISTS (SELECT 1 FROM campus.attendance b WHERE b.enrollmentid = a.enrollmentid
                            AND b.date = a.date AND b.excuseid IS NOT NULL)
         ORDER BY a.date, a.attendanceid LIMIT 1""", (YEAR,))[0]
    (agg_id, present, absent, _), = q(dsn, AGG, (enr, day))
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE campus.attendance SET presentminutes = 0, status = 'A', excuseid = %s, "
                     "modifieddate = now() WHERE attendanceid = %s", (excuse, att_id))
        # a new day's records and a day that disappears (its records deleted)
        conn.execute("""INSERT INTO campus.attendance (attendanceid, enrollmentid, personid, calendarid, endyear,
                               date, periodid, scheduledminutes, presentminutes, status)
                        SELECT 99000000 + periodid, enrollmentid, personid, calendarid, endyear, date + 300,
                               periodid, scheduledminutes, scheduledminutes, 'P'
                          FROM campus.attendance WHERE enrollmentid = %s AND date = %s""", (enr, day))
        gone = conn.execute("""DELETE FROM campus.attendance WHERE (enrollmentid, date) =
                                 (SELECT enrollmentid, max(date) FROM campus.attendance
                                   WHERE endyear = %s AND enrollmentid <> %s GROUP BY enrollmentid
                                   ORDER BY enrollmentid LIMIT 1)
                               RETURNING enrollmentid, date""", (YEAR, enr)).fetchall()
    assert len(gone) == 2
    assert q(dsn, AGG, (enr, day))[0][1:3] == (present, absent)  # the nightly job did not see it

    assert attendance.refresh(dsn, stmt, end_year=YEAR, district_id="NV02") == \
        {"recomputed": n_year, "inserted": 1, "updated": 1, "deleted": 1}
    assert q(dsn, AGG, (enr, day)) == [(agg_id, present - 180, absent + 180, excuse)]  # same key
    new = q(dsn, AGG, (enr, day + dt.timedelta(days=300)))
    assert len(new) == 1 and new[0][0] > max(r[0] for r in before) and new[0][1:3] == (360, 0)
    assert q(dsn, AGG, gone[0]) == []
    after = {r[0]: r for r in snapshot(dsn, YEAR)}
    changed = {r[0] for r in before if after.get(r[0]) != r} | (set(after) - {r[0] for r in before})
    assert len(changed) == 3  # nothing else was written
    assert snapshot(dsn, YEAR - 1) == previous  # the other school year is not touched
    assert q(nv["districts"]["NV16"], "SELECT count(*) FROM campus.attdayaggregation WHERE date > %s",
             (day + dt.timedelta(days=299),)) == [(0,)]

    report_shapes_and_refusals(nv)  # same databases: seeding costs more than the checks


def report_shapes_and_refusals(nv):
    """A deployment's own routine may return one count, named counts, or nothing (its rowcount);
    a failing statement is a RefreshError naming the district (no retry), and rolls back."""
    dsn = nv["districts"]["NV02"]
    n = q(dsn, "SELECT count(*) FROM campus.attdayaggregation WHERE endyear = %s", (YEAR,))[0][0]
    one = "SELECT (f).rows_recomputed FROM campus.refresh_attendance_aggregation(%(end_year)s) f"
    assert attendance.refresh(dsn, one.replace("(f).rows_recomputed", "f.rows_recomputed"),
                              end_year=YEAR, district_id="NV02") == {"recomputed": n}
    assert attendance.refresh(dsn, "SELECT campus.refresh_attendance_aggregation(%(end_year)s)", end_year=YEAR,
                              district_id="NV02") == {"recomputed": n, "inserted": 0, "updated": 0, "deleted": 0}
    with pytest.raises(attendance.RefreshError, match="no row count"):
        attendance.refresh(dsn, "SELECT NULL::int AS recomputed, %(end_year)s AS y", end_year=YEAR, district_id="NV02")
    assert attendance.refresh(dsn, "SELECT 5 AS n, %(district_id)s AS d WHERE %(end_year)s > 0",
                              end_year=YEAR, district_id="NV02") == {"recomputed": 5}
    upd = "UPDATE campus.attendance SET modifieddate = modifieddate WHERE endyear = %(end_year)s"
    assert attendance.refresh(dsn, upd, end_year=YEAR, district_id="NV02") == \
        {"recomputed": q(dsn, "SELECT count(*) FROM campus.attendance WHERE endyear = %s", (YEAR,))[0][0]}
    with pytest.raises(attendance.RefreshError, match="not a row count"):
        attendance.refresh(dsn, "SELECT 'many' WHERE %(end_year)s > 0", end_year=YEAR, district_id="NV02")
    before = snapshot(dsn, YEAR)
    with psycopg.connect(dsn) as conn:  # a routine that writes, then fails: nothing stays written
        conn.execute("""CREATE FUNCTION campus.broken_refresh(y int) RETURNS int LANGUAGE plpgsql AS $$
                        BEGIN UPDATE campus.attdayaggregation SET minutespresent = 0 WHERE endyear = y;
                              RETURN 1 / 0; END $$""")
    with pytest.raises(attendance.RefreshError, match="district NV02: DivisionByZero: division by zero"):
        attendance.refresh(dsn, "SELECT campus.broken_refresh(%(end_year)s)", end_year=YEAR, district_id="NV02")
    assert snapshot(dsn, YEAR) == before
