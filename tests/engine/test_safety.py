"""The state never silently diverges or loses rows: scope of deletes, guards, bad district keys,
concurrent related resyncs, the district snapshot, errors naming their side. Real PostgreSQL."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import psycopg
import pytest

from campus_sync.engine import sync as engine

from test_engine import YEAR, rows, snapshot, sync

pytestmark = pytest.mark.db


def sync_plan(graph, dep, names, district="0101", scope=None, **kw):
    """Sync `names` with every ancestor first, as a partial resync with check dependencies."""
    plan = graph.plan(list(names), True, "current", "KY").objects
    return {n: sync(graph, dep, n, district, scope=scope or engine.Scope(YEAR), **kw) for n in plan}


def count(dsn, table, district="0101"):
    return rows(dsn, f"SELECT count(*) FROM state.{table} WHERE district_id = %s", (district,))[0][0]


def test_employment_fte_null_to_nan_and_scale_are_carried(graph, deployment):
    """The issue's reproduction on demo data; verification uses the same definition."""
    from campus_sync.tools import verify

    sync_plan(graph, deployment, ["EmploymentAssignment"])
    d = deployment["districts"]["0101"]
    with psycopg.connect(d) as conn:
        a, b = [r[0] for r in conn.execute("SELECT assignmentid FROM campus.employmentassignment ORDER BY 1 LIMIT 2")]
        conn.execute("UPDATE campus.employmentassignment SET fte = NULL WHERE assignmentid = %s", (a,))
        conn.execute("UPDATE campus.employmentassignment SET fte = 8.5 WHERE assignmentid = %s", (b,))
    sync(graph, deployment, "EmploymentAssignment")
    with psycopg.connect(d) as conn:
        conn.execute("UPDATE campus.employmentassignment SET fte = 'NaN' WHERE assignmentid = %s", (a,))
        conn.execute("UPDATE campus.employmentassignment SET fte = 8.50 WHERE assignmentid = %s", (b,))
    # verification sees both differences before the resync...
    checks = verify.verify_district(graph, deployment["config"], "0101", deployment["state"],
                                    names=list(graph.plan(["EmploymentAssignment"], True, "current", "KY").objects))
    assert [c.different for c in checks if c.object == "EmploymentAssignment"] == [2]
    r = sync(graph, deployment, "EmploymentAssignment")
    assert (r.updated, r.inserted, r.deleted) == (2, 0, 0)
    got = dict(rows(deployment["state"], "SELECT assignmentid, fte::text FROM state.employmentassignment"
                    " WHERE assignmentid IN (%s, %s)", (a, b)))
    assert got == {a: "NaN", b: "8.50"}
    again = sync(graph, deployment, "EmploymentAssignment")  # and then it is stable
    assert (again.updated, again.inserted, again.deleted) == (0, 0, 0)


def test_rollover_deletes_nothing_of_the_previous_year(graph, deployment):
    """July 1: the current school year moves forward. TestScore is not year-scoped at the state;
    its extract refuses last year's scores (out_of_scope_year): they stay at the state."""
    first = sync_plan(graph, deployment, ["TestScore"])
    held = count(deployment["state"], "testscore")
    assert held > 0 and first["TestScore"].inserted == held
    nxt = sync_plan(graph, deployment, ["TestScore"], scope=engine.Scope(YEAR + 1))
    assert all(r.deleted == 0 for r in nxt.values()), {n: r.deleted for n, r in nxt.items()}
    assert count(deployment["state"], "testscore") == held
    assert count(deployment["state"], "calendar") > 0
    r = nxt["TestScore"]
    assert r.errors == r.processed and r.error_reasons.get("out_of_scope_year", 0) > 0
    # and once back in the year, nothing differs and nothing is copied again and again
    again = sync(graph, deployment, "TestScore")
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)


def test_kept_refused_rows_do_not_make_every_resync_copy(graph, deployment):
    sync_plan(graph, deployment, ["TestScore"])
    sync(graph, deployment, "TestScore", scope=engine.Scope(YEAR + 1))
    r = sync(graph, deployment, "TestScore", scope=engine.Scope(YEAR + 1))
    assert r.copied == 0 and r.deleted == 0


def test_a_row_excluded_at_the_district_leaves_the_state(graph, deployment):
    """Enrollment declares delete_refused: [state_excluded_*]."""
    sync_plan(graph, deployment, ["Enrollment"])
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        (eid,) = conn.execute("SELECT min(enrollmentid) FROM campus.enrollment WHERE NOT coalesce(stateexclude, false)"
                              " AND endyear = %s", (YEAR,)).fetchone()
        conn.execute("UPDATE campus.enrollment SET stateexclude = true WHERE enrollmentid = %s", (eid,))
    r = sync(graph, deployment, "Enrollment")
    assert r.deleted == 1
    assert not rows(deployment["state"], "SELECT 1 FROM state.enrollment WHERE enrollmentid = %s", (eid,))


def test_empty_guard_counts_accepted_rows(graph, deployment):
    sync_plan(graph, deployment, ["Enrollment"])
    state = deployment["state"]
    before = snapshot(state, "enrollment")
    in_year = rows(state, "SELECT count(*) FROM state.enrollment WHERE district_id = '0101' AND endyear = %s",
                   (YEAR,))[0][0]
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("UPDATE campus.enrollment SET stateexclude = true")  # every row refused, none accepted
    with pytest.raises(engine.EmptySourceError, match=r"district 0101 has no accepted Enrollment rows.*"
                                                      r"confirm_deletes=true.*--confirm-deletes"):
        sync(graph, deployment, "Enrollment")
    assert snapshot(state, "enrollment") == before
    r = sync(graph, deployment, "Enrollment", guard=engine.DeleteGuard(confirmed=True))
    assert r.deleted == in_year > 0


def test_mass_delete_guard(graph, deployment):
    sync_plan(graph, deployment, ["VaccineShot"])
    state = deployment["state"]
    before = snapshot(state, "vaccineshot")
    held = count(state, "vaccineshot")
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        gone = conn.execute("DELETE FROM campus.vaccineshot WHERE shotid IN (SELECT shotid FROM campus.vaccineshot"
                            " ORDER BY shotid LIMIT %s)", (held * 6 // 10,)).rowcount
    with pytest.raises(engine.MassDeleteError) as err:
        sync(graph, deployment, "VaccineShot")
    msg = str(err.value)
    assert f"VaccineShot for district 0101 would delete {gone} of the {held} rows" in msg
    assert "confirm_deletes=true" in msg and "nothing was written" in msg
    assert snapshot(state, "vaccineshot") == before
    # under the share (or below min_rows) it goes through; confirmed, the big one too
    assert sync(graph, deployment, "VaccineShot", guard=engine.DeleteGuard(max_share=0.7)).deleted == gone


def test_duplicate_and_null_keys_are_refused_and_the_state_stays_stable(graph, deployment):
    d, state = deployment["districts"]["0101"], deployment["state"]
    with psycopg.connect(d) as conn:  # a district table without a primary key
        conn.execute("ALTER TABLE campus.vaccineshot DROP CONSTRAINT vaccineshot_pkey")
        conn.execute("ALTER TABLE campus.vaccineshot ALTER COLUMN shotid DROP NOT NULL")
        conn.execute("ALTER TABLE campus.personidentity DROP CONSTRAINT personidentity_pkey")
        (shot,) = conn.execute("SELECT min(shotid) FROM campus.vaccineshot").fetchone()
        conn.execute("INSERT INTO campus.vaccineshot SELECT shotid, personid, 'OTHER', shotdate"
                     " FROM campus.vaccineshot WHERE shotid = %s", (shot,))
        conn.execute("INSERT INTO campus.vaccineshot SELECT NULL, personid, vaccine, shotdate"
                     " FROM campus.vaccineshot WHERE shotid = %s LIMIT 1", (shot,))
        (pid,) = conn.execute("SELECT max(personid) FROM campus.personidentity").fetchone()
        conn.execute("INSERT INTO campus.personidentity SELECT * FROM campus.personidentity WHERE personid = %s",
                     (pid,))
    # first load: no UniqueViolation, no NotNullViolation (PersonIdentity takes the direct path)
    first = sync_plan(graph, deployment, ["VaccineShot"])
    assert first["PersonIdentity"].error_reasons.get("duplicate_key") == 2
    assert first["VaccineShot"].error_reasons.get("duplicate_key") == 2
    assert first["VaccineShot"].error_reasons.get("null_key") == 1
    assert not rows(state, "SELECT 1 FROM state.vaccineshot WHERE shotid = %s", (shot,))
    assert not rows(state, "SELECT 1 FROM state.personidentity WHERE personid = %s", (pid,))
    # a key already at the state that becomes duplicated keeps its state row, unflipped
    with psycopg.connect(d) as conn:
        conn.execute("DELETE FROM campus.vaccineshot WHERE shotid = %s AND vaccine = 'OTHER'", (shot,))
    assert sync(graph, deployment, "VaccineShot").inserted == 1
    held = snapshot(state, "vaccineshot")
    with psycopg.connect(d) as conn:
        conn.execute("INSERT INTO campus.vaccineshot SELECT shotid, personid, 'OTHER', shotdate"
                     " FROM campus.vaccineshot WHERE shotid = %s", (shot,))
    for _ in range(2):
        r = sync(graph, deployment, "VaccineShot")
        assert (r.error_reasons.get("duplicate_key"), r.updated, r.deleted) == (2, 0, 0)
        assert r.error_reasons.get("null_key") == 1  # listed by key (None), still staged and refused
        assert [x[:4] for x in snapshot(state, "vaccineshot")] == [x[:4] for x in held]


def test_district_snapshot_is_released_before_the_merge(graph, deployment):
    sync_plan(graph, deployment, ["VaccineShot"])
    d, state = deployment["districts"]["0101"], deployment["state"]
    with psycopg.connect(d) as conn:
        conn.execute("UPDATE campus.vaccineshot SET vaccine = vaccine || '!'")
    seen = {}
    with psycopg.connect(state) as blocker:
        blocker.execute("LOCK TABLE state.vaccineshot IN EXCLUSIVE MODE")  # reads pass, the merge waits
        t = threading.Thread(target=lambda: seen.setdefault("r", sync(graph, deployment, "VaccineShot")))
        t.start()
        with psycopg.connect(state, autocommit=True) as probe, psycopg.connect(d, autocommit=True) as dprobe:
            for _ in range(300):
                waiting = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                        " AND datname = current_database()").fetchone()[0]
                if waiting:
                    break
                time.sleep(0.1)
            assert waiting, "the merge never reached the locked table"
            states = [r[0] for r in dprobe.execute(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        blocker.rollback()
        t.join(60)
    assert "idle in transaction" not in states
    assert seen["r"].updated > 0


def test_related_objects_of_one_district_serialise(graph, deployment):
    """Enrollment (a descendant) waits while PersonIdentity's sync holds its lock; a sibling
    (VaccineShot) does not."""
    sync_plan(graph, deployment, ["Enrollment", "VaccineShot"])
    (person_lock,) = [k for k, ex in engine.lock_keys(graph, "PersonIdentity", "0101") if ex]
    with psycopg.connect(deployment["state"]) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (person_lock,))
        done = {}
        ts = [threading.Thread(target=lambda n=n: done.setdefault(n, sync(graph, deployment, n)))
              for n in ("Enrollment", "VaccineShot")]
        for t in ts:
            t.start()
        time.sleep(2.0)
        assert "Enrollment" not in done  # waits for the PersonIdentity lock
        holder.rollback()
        for t in ts:
            t.join(60)
    assert set(done) == {"Enrollment", "VaccineShot"}
    assert engine.lock_keys(graph, "VaccineShot", "0101") != engine.lock_keys(graph, "Enrollment", "0101")


def test_overlapping_resyncs_of_one_district_both_finish(graph, deployment):
    """A full and a partial resync overlapping on one district, with deletes that cascade
    (PersonIdentity) and updates whose foreign keys are checked (Enrollment): no deadlock."""
    sync_plan(graph, deployment, ["Enrollment", "Roster", "VaccineShot"])
    d = deployment["districts"]["0101"]
    full = graph.plan(["Roster", "VaccineShot", "Enrollment"], True, "current", "KY").objects
    partial = ["PersonIdentity", "Enrollment"]
    errors: list[BaseException] = []

    def run(names, rounds):
        try:
            for _ in range(rounds):
                for n in names:
                    sync(graph, deployment, n, guard=engine.DeleteGuard(confirmed=True))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for step in range(3):
        with psycopg.connect(d) as conn:
            conn.execute("DELETE FROM campus.personidentity WHERE personid IN (SELECT personid FROM"
                         " campus.personidentity ORDER BY personid DESC LIMIT 2)")
            conn.execute("UPDATE campus.enrollment SET grade = grade WHERE true")
            conn.execute("UPDATE campus.enrollment SET servicetype = %s", (f"S{step}",))
        ts = [threading.Thread(target=run, args=(full, 1)), threading.Thread(target=run, args=(partial, 2))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not any(t.is_alive() for t in ts)
    assert not errors, errors
    assert sync(graph, deployment, "Enrollment").updated == 0


def test_a_lost_district_connection_names_the_side_the_district_and_the_object(graph, deployment):
    sync_plan(graph, deployment, ["VaccineShot"])
    d = deployment["districts"]["0101"]
    with psycopg.connect(d) as locker:
        locker.execute("LOCK TABLE campus.vaccineshot IN ACCESS EXCLUSIVE MODE")  # the extract waits
        out = {}

        def go():
            try:
                sync(graph, deployment, "VaccineShot")
            except engine.SyncError as exc:
                out["err"] = exc
        t = threading.Thread(target=go)
        t.start()
        with psycopg.connect(d, autocommit=True) as killer:
            for _ in range(300):
                pids = [r[0] for r in killer.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")]
                if pids:
                    break
                time.sleep(0.1)
            killer.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        t.join(60)
        locker.rollback()
    assert "district database: syncing VaccineShot for district 0101" in str(out["err"])
    assert isinstance(out["err"], engine.ConnectionFailedError)  # a fresh try may succeed: retried
    assert engine.connection_failed(out["err"])


def test_numeric_scale_in_a_full_copy_resync(graph, deployment):
    """The full-copy merge (most buckets differ) uses the same exact test as the bucket merge."""
    sync_plan(graph, deployment, ["EmploymentAssignment"])
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("UPDATE campus.employmentassignment SET fte = 1.0")
    sync(graph, deployment, "EmploymentAssignment")
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        n = conn.execute("UPDATE campus.employmentassignment SET fte = 1.00").rowcount
    r = sync(graph, deployment, "EmploymentAssignment")
    assert r.updated == n - r.errors > 0  # every accepted row; the orphan is refused
    assert {x[0] for x in rows(deployment["state"], "SELECT fte::text FROM state.employmentassignment"
                                                    " WHERE district_id = '0101'")} == {"1.00"}
    assert Decimal("1.00") == Decimal("1.0")  # equal as numbers, different as values the district holds
