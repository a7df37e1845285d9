"""The Resync State Data page's queries (campus_sync.web.data) on real PostgreSQL.

History rows are written through the same `history` functions the DAG tasks use, so the page
reads exactly what a run records; one test runs a real partial resync through the engine.
"""

from __future__ import annotations

import csv
import io

import psycopg
import pytest

from campus_sync import history, tasks, verify
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
    assert by["School"]["status"] == "yellow" and by["School"]["error_reasons"] == [("excluded_school", 2)]
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
    assert d2["results"][0]["error_reasons"] == [("b", 3), ("a", 1)]
    assert data.batch_detail(state, graph, 10**9) is None
    rows = list(csv.DictReader(io.StringIO(data.batch_csv(d2))))
    assert rows[0]["object"] == "School" and rows[0]["error_reasons"] == "b=3; a=1"


def test_clear_history_keeps_running_requests(state):
    done = _batch(state, results=[{"district_id": "0101", "object": "School", "processed": 1, "errors": 0}])
    running = _batch(state, status="running")
    assert data.clear_preview(state) == {"requests": 1, "object_results": 1, "id_results": 0}
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
