"""The delete guards refuse before the state is written: no row deleted (cascades included),
updated or inserted, not even inside a transaction that is then rolled back, whichever way the
resync found what differs (the key diff, a full copy, bucket digests with or without the row
listing). Confirmed, the same resync goes through. Real PostgreSQL.

Writes are seen by a row trigger on every state table that takes a number from a sequence: a
sequence is not rolled back with the transaction, so a delete that was undone still shows."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.engine import digest
from campus_sync.engine import sync as engine
from campus_sync.web import data

from test_engine import rows, snapshot, sync
from test_safety import count, sync_plan

pytestmark = pytest.mark.db

WATCHED = ("personidentity", "vaccineshot", "enrollment", "coursecode")


class Writes:
    """Row writes at the state, counted from `start()` (after the first loads) on."""

    def __init__(self, state: str) -> None:
        self.state = state

    def start(self) -> None:
        with psycopg.connect(self.state) as conn:
            conn.execute("CREATE SEQUENCE public.state_writes_seen")
            conn.execute("CREATE FUNCTION public.count_state_write() RETURNS trigger LANGUAGE plpgsql AS"
                         " $$BEGIN PERFORM nextval('public.state_writes_seen'); RETURN NULL; END$$")
            tables = [t for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'state' ORDER BY 1")]
            for t in tables:
                conn.execute(f'CREATE TRIGGER count_state_write AFTER INSERT OR UPDATE OR DELETE ON state."{t}"'
                             " FOR EACH ROW EXECUTE FUNCTION public.count_state_write()")
        assert set(WATCHED) <= set(tables)

    def __call__(self) -> int:
        return rows(self.state, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                                " FROM public.state_writes_seen")[0][0]


@pytest.fixture
def writes(deployment) -> Writes:
    return Writes(deployment["state"])


def state_of(dsn):
    return {t: snapshot(dsn, t) for t in WATCHED}


def refused(graph, dep, writes, name, error, **kw):
    """Sync `name`, expect `error`, and check that nothing at the state was written."""
    before = state_of(dep["state"])
    with pytest.raises(error) as err:
        sync(graph, dep, name, **kw)
    assert writes() == 0, "the refused resync wrote to the state (and rolled it back)"
    assert state_of(dep["state"]) == before
    return str(err.value)


def persons(dsn):
    return [r[0] for r in rows(dsn, "SELECT personid FROM campus.personidentity ORDER BY personid")]


def test_refused_from_the_key_diff_before_any_delete(graph, deployment, writes):
    """A person's delete cascades to their enrollments and shots: none of it runs."""
    sync_plan(graph, deployment, ["Enrollment", "VaccineShot"])
    writes.start()
    d, state = deployment["districts"]["0101"], deployment["state"]
    held = count(state, "personidentity")
    with psycopg.connect(d) as conn:
        gone = conn.execute("DELETE FROM campus.personidentity WHERE personid IN (SELECT personid FROM"
                            " campus.personidentity ORDER BY personid LIMIT %s)", (held * 6 // 10,)).rowcount
    msg = refused(graph, deployment, writes, "PersonIdentity", engine.MassDeleteError)
    assert f"PersonIdentity for district 0101 would delete {gone} of the {held} rows" in msg
    assert "nothing was written" in msg and "confirm_deletes=true" in msg
    r = sync(graph, deployment, "PersonIdentity", guard=engine.DeleteGuard(confirmed=True))
    assert r.deleted == gone and count(state, "personidentity") == held - gone
    assert writes() > gone  # the persons and, by cascade, their dependants: the counter sees deletes


def test_refused_before_a_full_copy_when_most_rows_are_gone(graph, deployment, writes):
    """80 % gone: the key diff gives up (copying everything is cheaper); the rows the state holds
    beyond the district's accepted ones are already too many, so not even the copy runs."""
    sync_plan(graph, deployment, ["VaccineShot"])
    writes.start()
    d, state = deployment["districts"]["0101"], deployment["state"]
    held = count(state, "personidentity")
    with psycopg.connect(d) as conn:
        conn.execute("DELETE FROM campus.personidentity WHERE personid IN (SELECT personid FROM"
                     " campus.personidentity ORDER BY personid LIMIT %s)", (held * 8 // 10,))
        left = conn.execute("SELECT count(*) FROM campus.personidentity").fetchone()[0]
    msg = refused(graph, deployment, writes, "PersonIdentity", engine.MassDeleteError)
    assert f"would delete {held - left} of the {held} rows the state holds (at least; " in msg
    # the page reads the counts back to offer the override
    assert data.refusal("failed", msg) == {"guard": "mass_delete", "deleted": held - left, "held": held}
    r = sync(graph, deployment, "PersonIdentity", guard=engine.DeleteGuard(confirmed=True))
    assert r.deleted == held - left and writes() > 0


def test_refused_after_the_copy_when_the_district_renumbered_its_keys(graph, deployment, writes):
    """As many rows as before, under new keys: only the staged copy tells how many would go;
    they are counted and refused before the delete."""
    sync_plan(graph, deployment, ["VaccineShot"])
    writes.start()
    d, state = deployment["districts"]["0101"], deployment["state"]
    held = count(state, "personidentity")
    with psycopg.connect(d) as conn:
        moved = conn.execute("UPDATE campus.personidentity SET personid = personid + 10000000 WHERE personid IN"
                             " (SELECT personid FROM campus.personidentity ORDER BY personid LIMIT %s)",
                             (held * 6 // 10,)).rowcount
    msg = refused(graph, deployment, writes, "PersonIdentity", engine.MassDeleteError)
    assert f"would delete {moved} of the {held} rows" in msg and "at least" not in msg
    assert data.refusal("failed", msg) == {"guard": "mass_delete", "deleted": moved, "held": held}
    r = sync(graph, deployment, "PersonIdentity", guard=engine.DeleteGuard(confirmed=True))
    assert (r.deleted, r.inserted) == (moved, moved)


@pytest.mark.parametrize("listed", [True, False], ids=["row-listing", "whole-buckets"])
def test_refused_in_the_bucket_merge_of_a_text_key(graph, deployment, writes, monkeypatch, listed):
    """CourseCode's key is text: bucket digests, then the rows of the differing buckets
    (listed by key hash, or whole buckets when the listing would be too long)."""
    d, state = deployment["districts"]["0101"], deployment["state"]
    with psycopg.connect(d) as conn:
        conn.execute("INSERT INTO campus.coursecode (code, name, subjectarea) SELECT 'X' || i, 'Course ' || i, 'S'"
                     " FROM generate_series(1, 4000) AS i")
    sync(graph, deployment, "CourseCode")
    writes.start()
    held = count(state, "coursecode")
    with psycopg.connect(d) as conn:
        gone = conn.execute("DELETE FROM campus.coursecode WHERE code LIKE 'X1%' AND length(code) = 4").rowcount
    assert gone == 100 and writes() == 0
    if not listed:
        monkeypatch.setattr(digest, "ROWS_MAX", 10)
    guard = engine.DeleteGuard(max_share=0.01)
    msg = refused(graph, deployment, writes, "CourseCode", engine.MassDeleteError, guard=guard)
    assert f"CourseCode for district 0101 would delete {gone} of the {held} rows" in msg
    r = sync(graph, deployment, "CourseCode", guard=engine.DeleteGuard(max_share=0.01, confirmed=True))
    assert r.deleted == gone and writes() >= gone


def test_empty_source_refused_before_any_write(graph, deployment, writes):
    sync_plan(graph, deployment, ["Enrollment"])
    writes.start()
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("UPDATE campus.enrollment SET stateexclude = true")
    refused(graph, deployment, writes, "Enrollment", engine.EmptySourceError)
    assert sync(graph, deployment, "Enrollment", guard=engine.DeleteGuard(confirmed=True)).deleted > 0
    assert writes() > 0
