"""The page's routes in-process (real auth manager, real state database): what they accept,
refuse, and whose rights they need. Triggering runs through Airflow's REST API is in tests/live."""

from __future__ import annotations

import pytest

from test_data import _batch

pytestmark = pytest.mark.db

BIGINT_MAX = 2**63 - 1


@pytest.fixture
def state(deployment):
    import psycopg

    with psycopg.connect(deployment["state"]) as conn:
        yield conn


def _detail(resp) -> str:
    return str(resp.json().get("detail"))


def test_unknown_fields_are_refused_not_dropped(page_client, state):
    c = page_client("admin")
    r = c.post("/api/plan", json={"objects": ["School"], "districts": ["0101"], "confirm_delete": True})
    assert r.status_code == 422 and "confirm_delete" in _detail(r)
    r = c.post("/api/selective", json={"object": "PersonIdentity", "ids": "1", "district": "0101", "dry_run": True})
    assert r.status_code == 422 and "dry_run" in _detail(r)
    assert c.post("/api/verification/run", json={"district": "0101"}).status_code == 422
    done = _batch(state, results=[{"district_id": "0101", "object": "School", "processed": 1, "errors": 0}])
    r = c.post("/api/history/clear", json={"confirm": True, "districts": ["0102"]})
    assert r.status_code == 422 and "districts" in _detail(r)
    assert state.execute("SELECT count(*) FROM sync.batch WHERE id = %s", (done,)).fetchone()[0] == 1


def test_the_plan_carries_confirm_deletes_to_the_run(page_client):
    c = page_client("viewer")  # reading a plan changes nothing
    plan = c.post("/api/plan", json={"objects": ["School"], "districts": ["0101"], "confirm_deletes": True}).json()
    assert plan["dag_id"] == "campus_partial_resync" and plan["conf"]["confirm_deletes"] is True
    assert plan["confirm_deletes"] is True
    plain = c.post("/api/plan", json={"objects": ["School"], "districts": ["0101"]}).json()
    assert plain["conf"].get("confirm_deletes", False) is False
    catalog = c.get("/api/catalog").json()
    every = [o["name"] for o in catalog["years"]["current"]["objects"]]
    full = c.post("/api/plan", json={"objects": every, "districts": ["0101"], "confirm_deletes": True}).json()
    assert full["dag_id"] == "campus_full_resync" and full["conf"] == {"districts": ["0101"], "confirm_deletes": True}


def test_confirming_deletes_needs_delete_rights(page_client):
    """A user with Write but not Delete may resync, not allow mass deletes: refused before any run."""
    c = page_client("user")
    r = c.post("/api/resync", json={"objects": ["School"], "districts": ["0101"], "confirm_deletes": True})
    assert r.status_code == 403 and "Delete rights" in _detail(r)


@pytest.mark.parametrize("path, name", [
    ("/api/history?page=99999999999999999999", "page"),
    ("/api/history?page=0", "page"),
    ("/api/history?per_page=0", "per_page"),
    ("/api/history?per_page=100000", "per_page"),
    ("/api/history/99999999999999999999", "batch_id"),
    (f"/api/history/{BIGINT_MAX + 1}/results.csv", "batch_id"),
    ("/api/history/0", "batch_id"),
    ("/api/history/99999999999999999999/refused", "batch_id"),
    ("/api/selective/99999999999999999999/report.pdf", "batch_id"),
])
def test_numeric_parameters_are_bounded(page_client, path, name):
    r = page_client("viewer").get(path)
    assert r.status_code == 422, (path, r.status_code, r.text)
    assert name in _detail(r)


def test_largest_ids_are_answered_not_crashed(page_client):
    c = page_client("viewer")
    assert c.get(f"/api/history/{BIGINT_MAX}").status_code == 404
    last = c.get(f"/api/history?page={10**6}").json()
    assert last["items"] == []


def test_clear_history_of_the_shown_district(page_client, state):
    own = _batch(state, districts=("0101",), requested_at="2026-09-01 08:00+00", results=[
        {"district_id": "0101", "object": "School", "processed": 1, "errors": 0}])
    other = _batch(state, districts=("0102",), requested_at="2026-09-02 08:00+00", results=[
        {"district_id": "0102", "object": "School", "processed": 2, "errors": 0}])
    c = page_client("viewer")
    preview = c.get("/api/history/clear?district=0101").json()
    assert preview["requests"] == 1 and preview["district"] == "0101" and preview["before"] is None
    everything = c.get("/api/history/clear").json()
    assert everything["requests"] == 2 and everything["district"] is None
    dated = c.get("/api/history/clear?district=0101&before=2026-09-01").json()
    assert dated["requests"] == 0 and dated["before"].startswith("2026-09-01T00:00:00")  # with its offset
    assert c.get("/api/history/clear?district=9999").status_code == 400

    assert page_client("user").post("/api/history/clear", json={"confirm": True, "district": "0101"}).status_code == 403
    r = page_client("admin").post("/api/history/clear", json={"confirm": True, "district": "0101"})
    assert r.status_code == 200 and r.json()["deleted"]["requests"] == 1
    left = {row[0] for row in state.execute("SELECT id FROM sync.batch").fetchall()}
    assert left == {other} and own not in left
