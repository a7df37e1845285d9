"""The sync engine against real PostgreSQL: counts, refusals, rollback, idempotence, guards."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from campus_sync.engine import sync as engine

pytestmark = pytest.mark.db
YEAR = 2027


def sync(graph, dep, name, district="0101", **kw):
    return engine.sync_object(graph, name, district_id=district, source_dsn=dep["districts"][district],
                              state_dsn=dep["state"], scope=kw.pop("scope", engine.Scope(YEAR)), **kw)


def sync_all(graph, dep, district="0101"):
    return {n: sync(graph, dep, n, district) for n in graph.enabled("KY")}


def rows(dsn, query, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_full_load_then_unchanged(graph, deployment):
    first = sync_all(graph, deployment)
    assert sum(r.inserted for r in first.values()) > 1000
    assert all(r.updated == 0 and r.deleted == 0 for r in first.values())
    for name, r in first.items():
        assert r.processed == r.errors + r.inserted, name
    second = sync_all(graph, deployment)
    assert all((r.inserted, r.updated, r.deleted) == (0, 0, 0) for r in second.values())
    assert {n: r.unchanged for n, r in second.items()} == {n: r.inserted for n, r in first.items()}
    # the state holds exactly the accepted rows, tagged with the district
    persons = rows(deployment["state"], "SELECT count(*), min(district_id), max(district_id) FROM state.personidentity")
    assert persons == [(first["PersonIdentity"].inserted, "0101", "0101")]


def test_insert_update_delete_counts(graph, deployment):
    sync_all(graph, deployment)
    d = deployment["districts"]["0101"]
    with psycopg.connect(d) as conn:
        ids = [r[0] for r in conn.execute("SELECT personid FROM campus.personidentity ORDER BY personid LIMIT 3")]
        conn.execute("UPDATE campus.personidentity SET lastname = 'Changed' WHERE personid = ANY(%s)", (ids[:2],))
        conn.execute("DELETE FROM campus.personidentity WHERE personid = %s", (ids[2],))
        conn.execute("INSERT INTO campus.personidentity (personid, lastname, firstname) VALUES (5, 'New', 'Person')")
    r = sync(graph, deployment, "PersonIdentity")
    assert (r.inserted, r.updated, r.deleted) == (1, 2, 1)
    assert rows(deployment["state"], "SELECT lastname FROM state.personidentity WHERE personid = ANY(%s) ORDER BY 1",
                ([*ids[:2], 5],)) == [("Changed",), ("Changed",), ("New",)]
    # the deleted person's dependants at the state went with them (ON DELETE CASCADE)
    assert rows(deployment["state"], "SELECT count(*) FROM state.enrollment WHERE personid = %s", (ids[2],)) == [(0,)]


def test_every_refusal_reason_counted(graph, deployment):
    results = sync_all(graph, deployment)
    scores = results["TestScore"].error_reasons
    assert {k: scores[k] for k in (
        "test_no_state_code", "test_not_published", "score_undated", "out_of_scope_year",
        "test_district_locked", "student_not_enrolled")} == dict.fromkeys(
        ("test_no_state_code", "test_not_published", "score_undated", "out_of_scope_year",
         "test_district_locked", "student_not_enrolled"), 1)
    enr = results["Enrollment"]
    assert enr.error_reasons["state_excluded_calendar"] == 3       # the summer-school calendar
    assert enr.error_reasons["parent_missing:PersonIdentity"] == 1  # the orphan
    assert results["Calendar"].error_reasons == {"state_excluded_calendar": 1}
    assert results["StructureGradeLevel"].error_reasons["state_excluded_grade_level"] >= 1
    assert enr.excluded == sum(v for k, v in enr.error_reasons.items() if k.startswith("state_excluded_"))
    # refused rows are not at the state; errors = sum of reasons
    for r in results.values():
        assert r.errors == sum(r.error_reasons.values())
    # an excluded enrollment and an excluded grade level, made now, are refused under their reasons
    d = deployment["districts"]["0101"]
    with psycopg.connect(d) as conn:
        (eid,) = conn.execute("SELECT enrollmentid FROM campus.enrollment e JOIN campus.calendar c USING (calendarid)"
                              " WHERE e.endyear = %s AND NOT c.stateexclude AND NOT e.stateexclude AND e.personid < 99000000"
                              " ORDER BY 1 LIMIT 1", (YEAR,)).fetchone()
        conn.execute("UPDATE campus.enrollment SET stateexclude = true WHERE enrollmentid = %s", (eid,))
    again = sync(graph, deployment, "Enrollment")
    assert again.error_reasons["state_excluded_enrollment"] == enr.error_reasons.get("state_excluded_enrollment", 0) + 1
    assert again.deleted == 1
    assert rows(deployment["state"], "SELECT count(*) FROM state.enrollment WHERE enrollmentid = %s", (eid,)) == [(0,)]


def test_parent_missing_counted_not_crashing(graph, deployment):
    """Without the parents at the state, every child row is refused as parent_missing."""
    r = sync(graph, deployment, "Enrollment")
    assert r.inserted == 0 and r.errors == r.processed > 0
    assert set(r.error_reasons) <= {"parent_missing:Calendar", "parent_missing:PersonIdentity",
                                    "parent_missing:ScheduleStructure", "state_excluded_calendar",
                                    "state_excluded_enrollment", "state_excluded_grade_level"}


def snapshot(dsn, table):
    return rows(dsn, f"SELECT * FROM state.{table} ORDER BY 1, 2")


def test_failure_mid_load_rolls_back(graph, deployment):
    sync_all(graph, deployment)
    state, d = deployment["state"], deployment["districts"]["0101"]
    before = snapshot(state, "personidentity")
    with psycopg.connect(d) as conn:
        conn.execute("UPDATE campus.personidentity SET lastname = 'Changed' WHERE personid % 3 = 0")
        conn.execute("DELETE FROM campus.personidentity WHERE personid % 7 = 0")
        conn.execute("INSERT INTO campus.personidentity (personid, lastname) VALUES (13, 'Boom')")
    with psycopg.connect(state) as conn:  # the last statement of the load (the insert) fails
        conn.execute("""CREATE FUNCTION state.boom() RETURNS trigger LANGUAGE plpgsql AS
                        $$ BEGIN IF NEW.personid = 13 THEN RAISE EXCEPTION 'disk on fire'; END IF;
                        RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER boom BEFORE INSERT ON state.personidentity FOR EACH ROW EXECUTE FUNCTION state.boom()")
    with pytest.raises(psycopg.errors.RaiseException, match="disk on fire"):
        sync(graph, deployment, "PersonIdentity")
    assert snapshot(state, "personidentity") == before
    assert snapshot(state, "enrollment")  # dependants untouched too


def test_empty_source_does_not_wipe_state(graph, deployment):
    sync_all(graph, deployment)
    state, d = deployment["state"], deployment["districts"]["0101"]
    before = snapshot(state, "vaccineshot")
    with psycopg.connect(d) as conn:
        conn.execute("TRUNCATE campus.vaccineshot")
    with pytest.raises(engine.EmptySourceError, match="no accepted VaccineShot rows.*confirm_deletes"):
        sync(graph, deployment, "VaccineShot")
    assert snapshot(state, "vaccineshot") == before
    r = sync(graph, deployment, "VaccineShot", guard=engine.DeleteGuard(confirmed=True))
    assert r.deleted == len(before) and snapshot(state, "vaccineshot") == []


def test_districts_and_years_are_separate_scopes(graph, deployment):
    for d in ("0101", "0102"):
        for n in ("District", "School", "Calendar", "ScheduleStructure"):
            sync(graph, deployment, n, d)
    prev = engine.Scope(YEAR - 1)
    for n in ("Calendar", "ScheduleStructure"):
        sync(graph, deployment, n, "0101", scope=prev)
    counts = dict(rows(deployment["state"], "SELECT district_id || ':' || endyear, count(*) FROM state.calendar GROUP BY 1"))
    assert counts == {"0101:2026": 3, "0101:2027": 3, "0102:2027": 3}
    # resyncing 0102's current year touches neither 0101 nor the previous year
    r = sync(graph, deployment, "Calendar", "0102")
    assert (r.inserted, r.updated, r.deleted) == (0, 0, 0)
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("DELETE FROM campus.calendar WHERE endyear = %s AND NOT stateexclude AND calendarid IN "
                     "(SELECT min(calendarid) FROM campus.calendar WHERE endyear = %s)", (YEAR, YEAR))
    r = sync(graph, deployment, "Calendar", "0101")
    assert r.deleted == 1
    counts = dict(rows(deployment["state"], "SELECT district_id || ':' || endyear, count(*) FROM state.calendar GROUP BY 1"))
    assert counts == {"0101:2026": 3, "0101:2027": 2, "0102:2027": 3}


def test_same_district_and_object_never_interleave(graph, deployment):
    sync(graph, deployment, "District")
    with psycopg.connect(deployment["state"]) as holder:
        (own,) = [k for k, exclusive in engine.lock_keys(graph, "School", "0101") if exclusive]
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (own,))
        done = threading.Event()
        t = threading.Thread(target=lambda: (sync(graph, deployment, "School"), done.set()))
        t.start()
        time.sleep(1.0)
        assert not done.is_set()  # waiting for the other resync of 0101/School
        holder.rollback()  # release
        t.join(30)
    assert done.is_set()


@pytest.mark.parametrize("processed, errors, colour", [
    (100, 0, "green"), (100, 1, "yellow"), (1000, 10, "yellow"), (100, 2, "red"), (0, 0, "green"), (1, 1, "red")])
def test_status_colour(processed, errors, colour):
    assert engine.status_colour(processed, errors) == colour
