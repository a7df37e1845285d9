"""The Resync State Data page's queries (campus_sync.web.data) on real PostgreSQL.

History rows are written through the same `history` functions the DAG tasks use, so the page
reads exactly what a run records; one test runs a real partial resync through the engine.
"""

from __future__ import annotations

import csv
import io

import psycopg
import pytest

from campus_sync.tools import history
from campus_sync.orchestration import tasks
from campus_sync.tools import verify
from campus_sync.web import data

pytestmark = pytest.mark.db


def _batch(conn, *, kind="partial", districts=("0101",), objects=("District", "School"), end_year=2027,
           results=(), status="complete", requested_at=None, user="alice"):
    bid = history.create_batch(conn, kind=kind, requested_by=user, school_year="current", end_year=end_year,
                               check_dependencies=True, districts=list(districts), objects=list(objects),
                               dag_id="d", run_id=f"r{len(results)}-{id(results)}-{requested_at}-{kind}-{districts}")
    if requested_at:
        conn.execute("UPDATE sync.batch SET requested_at = %s WHERE id = %s", (requested_at, bid))
    for i, r in enumerate(results):
        history.record_result(conn, bid, dict({"started_at": requested_at and f"{requested_at}", **r}),
                              status=r.get("status"))
        if requested_at:
            conn.execute("UPDATE sync.batch_result SET started_at = %s::timestamptz + %s * interval '1 second'"
                         " WHERE batch_id = %s AND district_id = %s AND object = %s",
                         (requested_at, i, bid, r["district_id"], r["object"]))
    if status != "running":
        history.finish_batch(conn, bid, status)
    conn.commit()
    return bid


@pytest.fixture
def state(deployment):
    with psycopg.connect(deployment["state"]) as conn:
        yield conn


def test_resync_rows_latest_per_object_in_hierarchy_order(state, graph, deployment):
    cfg = deployment["config"]
    _batch(state, results=[
        {"district_id": "0101", "object": "School", "processed": 10, "errors": 0, "status": "green"},
    ], requested_at="2026-09-01 10:00+00")
    newer = _batch(state, results=[
        {"district_id": "0101", "object": "School", "processed": 200, "errors": 2, "status": "yellow",
         "error_reasons": {"excluded_school": 2}},
        {"district_id": "0101", "object": "District", "processed": 1, "errors": 0, "status": "green"},
        {"district_id": "0102", "object": "Calendar", "processed": 5, "errors": 3, "status": "red"},
    ], requested_at="2026-10-01 10:00+00")
    # Neither a selective sync nor another year's resync is the Resync tool's Last Resync.
    _batch(state, kind="selective", results=[
        {"district_id": "0101", "object": "School", "processed": 1, "errors": 1, "status": "red"}],
        requested_at="2026-11-01 10:00+00")
    _batch(state, end_year=2026, results=[
        {"district_id": "0101", "object": "District", "processed": 1, "errors": 1, "status": "red"}],
        requested_at="2026-11-02 10:00+00")

    rows = data.resync_rows(state, graph, cfg, "0101")
    assert [r["object"] for r in rows] == list(graph.enabled(cfg.state, "current"))
    by = {r["object"]: r for r in rows}
    assert by["School"]["batch_id"] == newer and by["School"]["processed"] == 200
    assert by["School"]["status"] == "yellow" and [r[:2] for r in by["School"]["error_reasons"]] == [("excluded_school", 2)]
    assert by["District"]["status"] == "green"
    assert by["Calendar"]["status"] == "none" and by["Calendar"]["last_resync"] is None  # 0102's, not ours
    assert by["Enrollment"]["ancestors"] == list(graph.ancestors("Enrollment"))

    previous = data.resync_rows(state, graph, cfg, "0101", "previous")
    assert [r["object"] for r in previous] == list(graph.enabled(cfg.state, "previous"))
    assert "District" not in {r["object"] for r in previous}  # not tied to a school year


def test_resync_rows_unknown_district(state, graph, deployment):
    from campus_sync.config import ConfigError

    with pytest.raises(ConfigError, match="unknown district '9999'"):
        data.resync_rows(state, graph, deployment["config"], "9999")


def test_history_pages_newest_first_with_filters(state):
    ids = [_batch(state, kind="selective" if i % 3 == 0 else "partial",
                  districts=("0102",) if i % 2 else ("0101",),
                  requested_at=f"2026-10-{i + 1:02d} 08:00+00") for i in range(25)]
    page = data.history_page(state, page=2, per_page=10)
    assert page["total"] == 25 and page["pages"] == 3
    assert [b["id"] for b in page["items"]] == list(reversed(ids))[10:20]
    sel = data.history_page(state, kind="selective", per_page=100)
    assert [b["id"] for b in sel["items"]] == [ids[i] for i in range(24, -1, -1) if i % 3 == 0]
    only = data.history_page(state, district_id="0102", per_page=100)
    assert {tuple(b["districts"]) for b in only["items"]} == {("0102",)} and only["total"] == 12
    with pytest.raises(ValueError, match="unknown kind 'bogus'"):
        data.history_page(state, kind="bogus")
    assert data.history_page(state, per_page=10_000)["per_page"] == data.MAX_PER_PAGE


def test_batch_detail_one_district_in_hierarchy_order(state, graph):
    bid = _batch(state, districts=("0101", "0102"), objects=("District", "School", "Enrollment"), results=[
        {"district_id": "0101", "object": "Enrollment", "processed": 3, "errors": 0, "status": "green"},
        {"district_id": "0101", "object": "District", "processed": 1, "errors": 0, "status": "green"},
        {"district_id": "0102", "object": "School", "processed": 4, "errors": 4, "status": "red",
         "error_reasons": {"a": 1, "b": 3}},
    ])
    d = data.batch_detail(state, graph, bid)
    assert d["district"] == "0101" and [r["object"] for r in d["results"]] == ["District", "Enrollment"]
    d2 = data.batch_detail(state, graph, bid, "0102")
    assert [r[:2] for r in d2["results"][0]["error_reasons"]] == [("b", 3), ("a", 1)]
    assert data.batch_detail(state, graph, 10**9) is None
    rows = list(csv.DictReader(io.StringIO(data.batch_csv(d2))))
    assert rows[0]["object"] == "School" and rows[0]["error_reasons"] == "b=3; a=1"


def test_clear_history_keeps_running_requests(state):
    done = _batch(state, results=[{"district_id": "0101", "object": "School", "processed": 1, "errors": 0}])
    running = _batch(state, status="running")
    assert data.clear_preview(state) == {"requests": 1, "shared_requests": 0, "object_results": 1, "id_results": 0}
    assert data.clear_history(state)["requests"] == 1
    left = {b["id"] for b in data.history_page(state)["items"]}
    assert left == {running} and done not in left


def test_history_csv_every_request(state):
    for i in range(3):
        _batch(state, requested_at=f"2026-10-0{i + 1} 08:00+00")
    rows = list(csv.DictReader(io.StringIO(data.history_csv(state))))
    assert len(rows) == 3 and rows[0]["requested_at"].startswith("2026-10-03")
    assert rows[0]["districts"] == "0101" and rows[0]["requested"] == "District School"


def test_real_resync_shows_on_the_page(state, graph, deployment):
    """A real partial resync (the DAG's task functions, the engine) then the page's view of it."""
    units = tasks.start_request({"objects": ["School"], "districts": ["0101"]}, kind="partial", user="bob",
                                dag_id="campus_partial_resync", run_id="manual__1")
    unit = units[0]
    outcomes = {}
    for i, name in enumerate(unit["objects"]):
        outcomes[(name, 0)] = ("success", tasks.run_object(name, unit))
    tasks.finish_request(units, outcomes)
    rows = {r["object"]: r for r in data.resync_rows(state, graph, deployment["config"], "0101")}
    school = rows["School"]
    assert school["processed"] > 0 and school["requested_by"] == "bob"
    expected = "green" if school["errors"] == 0 else ("yellow" if school["errors"] <= school["processed"] / 100 else "red")
    assert school["status"] == expected
    progress = data.batch_by_run(state, "campus_partial_resync", "manual__1")
    assert progress["status"] == "complete" and progress["done"] == progress["total"] == len(unit["objects"])


def test_verification_latest(state, deployment):
    verify.verify(["0101"], user="carol")
    v = data.verification(state, deployment["config"], "0101")
    assert [d["district_id"] for d in v["districts"]] == ["0101"]
    assert v["district"]["objects"] and v["label"] == "2026-27"
    assert data.verification(state, deployment["config"], "0102")["district"] is None
    rows = list(csv.DictReader(io.StringIO(data.verification_csv(state, deployment["config"]))))
    assert {r["district_id"] for r in rows} == {"0101"} and "accuracy" in rows[0]


def test_clear_history_of_one_district(state, graph):
    """Clear History scoped to the shown district: that district's requests go; a request of several
    districts keeps the others' results and lists only them; other districts are untouched."""
    own = _batch(state, districts=("0101",), requested_at="2026-09-01 08:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 1, "errors": 0}])
    other = _batch(state, districts=("0102",), requested_at="2026-09-02 08:00+00", results=[
        {"district_id": "0102", "object": "School", "processed": 2, "errors": 0}])
    shared = _batch(state, districts=("0101", "0102"), requested_at="2026-10-05 08:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 3, "errors": 0},
        {"district_id": "0101", "object": "District", "processed": 1, "errors": 0},
        {"district_id": "0102", "object": "School", "processed": 4, "errors": 0}])
    running = _batch(state, districts=("0101",), status="running")

    assert data.clear_preview(state, district="0101") == {
        "requests": 1, "shared_requests": 1, "object_results": 3, "id_results": 0}
    assert data.clear_preview(state, before="2026-10-01", district="0101") == {
        "requests": 1, "shared_requests": 0, "object_results": 1, "id_results": 0}
    assert data.clear_preview(state)["requests"] == 3  # every district: the three finished requests

    assert data.clear_history(state, district="0101") == {
        "requests": 1, "shared_requests": 1, "object_results": 3, "id_results": 0}
    left = {b["id"]: b for b in data.history_page(state, per_page=100)["items"]}
    assert set(left) == {other, shared, running} and own not in left
    assert left[shared]["districts"] == ["0102"]
    detail = data.batch_detail(state, graph, shared)
    assert detail["district"] == "0102" and [r["processed"] for r in detail["results"]] == [4]
    assert state.execute("SELECT count(*) FROM sync.batch_result WHERE district_id = '0101'"
                         " AND batch_id <> %s", (running,)).fetchone()[0] == 0
    assert data.history_page(state, district_id="0101", per_page=100)["total"] == 1  # the running one


def test_resync_view_keeps_the_last_result_after_clear_history(state, graph, deployment):
    """The Resync view's Last Resync / Processed / Errors describe data still at the state: Clear
    History deletes requests, not the last result per object."""
    cfg = deployment["config"]
    _batch(state, requested_at="2026-09-01 10:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 10, "errors": 0, "status": "green"}])
    newer = _batch(state, requested_at="2026-10-01 10:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 200, "errors": 3, "status": "red",
         "error_reasons": {"state_excluded_school": 3}},
        {"district_id": "0101", "object": "District", "processed": 1, "errors": 0, "status": "green"}])
    before = {r["object"]: r for r in data.resync_rows(state, graph, cfg, "0101")}
    assert data.clear_history(state)["requests"] == 2
    after = {r["object"]: r for r in data.resync_rows(state, graph, cfg, "0101")}
    for name in ("School", "District"):
        for field in ("batch_id", "status", "last_resync", "processed", "errors", "error_reasons", "requested_by"):
            assert after[name][field] == before[name][field], (name, field)
    assert after["School"]["batch_id"] == newer and after["School"]["processed"] == 200
    # a later resync replaces it; an earlier result recorded late (an Airflow retry) does not
    latest = _batch(state, requested_at="2026-11-01 10:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 7, "errors": 0, "status": "green"}])
    _batch(state, requested_at="2026-08-01 10:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 1, "errors": 1, "status": "red"}])
    data.clear_history(state)
    school = {r["object"]: r for r in data.resync_rows(state, graph, cfg, "0101")}["School"]
    assert (school["batch_id"], school["processed"], school["status"]) == (latest, 7, "green")
    # a selective sync is not a resync of the object; another school year is another row
    _batch(state, kind="selective", requested_at="2026-12-01 10:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 1, "errors": 1, "status": "red"}])
    data.clear_history(state)
    assert {r["object"]: r for r in data.resync_rows(state, graph, cfg, "0101")}["School"]["batch_id"] == latest
    assert {r["object"]: r for r in data.resync_rows(state, graph, cfg, "0101", "next")}["Calendar"]["status"] == "none"


def test_reasons_carry_plain_language_text(state, graph, deployment):
    _batch(state, requested_at="2026-10-01 10:00+00", results=[
        {"district_id": "0101", "object": "Calendar", "processed": 9, "errors": 3, "status": "red",
         "error_reasons": {"state_excluded_calendar": 2, "parent_missing:School": 1}}])
    row = {r["object"]: r for r in data.resync_rows(state, graph, deployment["config"], "0101")}["Calendar"]
    (code1, n1, text1), (code2, n2, text2) = row["error_reasons"]
    assert (code1, n1, code2, n2) == ("state_excluded_calendar", 2, "parent_missing:School", 1)
    assert "calendar" in text1.lower() and "excluded" in text1.lower()
    assert "School" in text2 and "not at the state" in text2


def test_a_refused_mass_delete_offers_its_counts(state, graph, deployment):
    """The engine's delete guard refuses a real resync; the page reads the counts from the refused
    result and offers exactly that rerun (the refused objects and districts, confirm_deletes)."""
    units = tasks.start_request({"objects": ["VaccineShot"], "districts": ["0101"]}, kind="partial", user="bob",
                                dag_id="campus_partial_resync", run_id="manual__first")
    outcomes = {(name, 0): ("success", tasks.run_object(name, units[0])) for name in units[0]["objects"]}
    tasks.finish_request(units, outcomes)
    held = state.execute("SELECT count(*) FROM state.vaccineshot WHERE district_id = '0101'").fetchone()[0]
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        gone = conn.execute("DELETE FROM campus.vaccineshot WHERE shotid IN (SELECT shotid FROM campus.vaccineshot"
                            " ORDER BY shotid LIMIT %s)", (held * 6 // 10,)).rowcount
    assert gone >= 10
    state.rollback()
    units = tasks.start_request({"objects": ["VaccineShot"], "districts": ["0101"], "check_dependencies": False},
                                kind="partial", user="bob", dag_id="campus_partial_resync", run_id="manual__second")
    with pytest.raises(Exception, match="would delete"):
        tasks.run_object("VaccineShot", units[0])
    tasks.finish_request(units, {("VaccineShot", 0): ("failed", None)})
    batch_id = units[0]["batch_id"]

    got = data.refusals(state, batch_id)
    assert got["batch_id"] == batch_id and got["school_year"] == "current"
    assert got["refused"] == [{"district_id": "0101", "object": "VaccineShot", "guard": "mass_delete",
                               "deleted": gone, "held": held}]
    assert got["reruns"] == [{"objects": ["VaccineShot"], "districts": ["0101"], "check_dependencies": False,
                              "school_year": "current", "requested_by": "district", "confirm_deletes": True}]
    row = {r["object"]: r for r in data.resync_rows(state, graph, deployment["config"], "0101")}["VaccineShot"]
    assert row["refused"] == {"guard": "mass_delete", "deleted": gone, "held": held}
    progress = data.batch_by_run(state, "campus_partial_resync", "manual__second")
    assert progress["refused"] == got["refused"]

    state.rollback()  # end this connection's read, so the next request's schema check is not held up
    # every row gone at the district: the empty-source guard, with the rows the state holds
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("DELETE FROM campus.vaccineshot")
    units = tasks.start_request({"objects": ["VaccineShot"], "districts": ["0101"], "check_dependencies": False},
                                kind="partial", user="bob", dag_id="campus_partial_resync", run_id="manual__third")
    with pytest.raises(Exception, match="no accepted"):
        tasks.run_object("VaccineShot", units[0])
    tasks.finish_request(units, {("VaccineShot", 0): ("failed", None)})
    assert data.refusals(state, units[0]["batch_id"])["refused"] == [
        {"district_id": "0101", "object": "VaccineShot", "guard": "empty_source", "deleted": held, "held": held}]
    assert data.refusals(state, 10**9) is None


def test_the_schema_check_does_not_wait_for_the_pages_readers(state, graph, deployment):
    """Every request checks the state schema; a reader of the history (the page exporting it, or
    any open read) must not make that check wait, nor queue every later writer behind it."""
    from campus_sync.engine import schema

    _batch(state, results=[{"district_id": "0101", "object": "School", "processed": 1, "errors": 0}])
    state.execute("SELECT count(*) FROM sync.batch").fetchone()  # a read, its transaction left open
    state.execute("SELECT count(*) FROM sync.batch_result").fetchone()
    with psycopg.connect(deployment["state"]) as other:
        other.execute("SET lock_timeout = '3s'")
        schema.ensure_state_schema(other, graph)
    state.rollback()
