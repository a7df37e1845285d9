"""The Ed-Fi Resync tab's routes and rights, in-process with Airflow's simple auth manager
(tests/web/conftest.py) over the test deployment; the history, error report and read-only
combinations come from a real resync against a real local Ed-Fi API. Rights: viewer reads, user
(and op, admin) also starts; Add and Delete give nothing; no user or an unknown role gets nothing."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
from resync_helpers import point_connection, seed_edfi, start_fresh_api  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.airflow]
READ_ROUTES = ["/api/edfi/rights", "/api/edfi/configurations", "/api/edfi/history", "/api/edfi/read-only",
               "/api/edfi/progress?run_id=manual__x", "/api/edfi/1/failed.csv"]


@pytest.fixture
def seeded(deployment):
    seed_edfi(deployment["districts"]["0101"])
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        schools = [r[0] for r in conn.execute("SELECT schoolid FROM campus.school ORDER BY schoolid")]
    return {**deployment, "schools": schools}


def test_configurations_offer_the_form(page_client, seeded):
    c = page_client("viewer")
    r = c.get("/api/edfi/configurations")
    assert r.status_code == 200, r.text
    confs = {x["configuration"]: x for x in r.json()["configurations"]}
    assert set(confs) == {"demo", "tn"}
    demo = confs["demo"]
    assert demo["district"] == "0101" and [s[0] for s in demo["schools"]] == seeded["schools"]
    assert all(isinstance(name, str) and name for _, name in demo["schools"])
    assert demo["resources"].index("schools") < demo["resources"].index("sections")
    assert demo["run_cleanup_allowed"] is False and confs["tn"]["run_cleanup_allowed"] is True
    assert "off-peak" in demo["all_schools_warning"]


def test_plan_lists_the_resources_in_order(page_client, seeded):
    c = page_client("viewer")  # planning is reading
    r = c.post("/api/edfi/plan", json={"configuration": "demo", "schools": [seeded["schools"][0]],
                                       "resources": ["sections"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["plan"] == ["schools", "courses", "sessions", "courseOfferings", "sections"]  # dependency order
    assert body["chosen"] == ["sections"] and "sessions" in body["added"]
    assert body["conf"]["schools"] == [str(seeded["schools"][0])] and body["dag_id"] == "edfi_resync"
    no_deps = c.post("/api/edfi/plan", json={"configuration": "demo", "all_schools": True, "resources": ["sections"],
                                             "select_dependencies": False}).json()
    assert no_deps["plan"] == ["sections"]


@pytest.mark.parametrize("body, status, message", [
    ({"configuration": "demo", "schools": [1], "resources": ["bogus"]}, 400, "unknown resource 'bogus'"),
    ({"configuration": "demo", "resources": ["schools"]}, 400, "choose at least one school, or All Schools"),
    ({"configuration": "nowhere", "all_schools": True}, 400, "unknown Ed-Fi configuration 'nowhere'"),
    ({"configuration": "demo", "all_schools": True, "run_cleanup": True}, 400, "Tennessee only"),
    ({"configuration": "demo", "all_schools": True, "person_ids": "12, x7"}, 400, "'x7' not a positive whole number"),
    ({"configuration": "demo", "all_schools": True, "school": [1]}, 422, "school: unknown field"),
    ({"configuration": "demo", "all_schools": "yes"}, 422, "all_schools"),
])
def test_bad_forms_answer_naming_the_value(page_client, seeded, body, status, message):
    for user in ("viewer", "user"):
        r = page_client(user).post("/api/edfi/plan", json=body)
        assert r.status_code == status and message in r.json()["detail"], r.text
    r = page_client("user").post("/api/edfi/resync", json=body)  # refused before any trigger
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_rights_read_views_write_starts_fail_closed(page_client, seeded, monkeypatch):
    from campus_sync.web import rights

    body = {"configuration": "demo", "all_schools": True}
    viewer = page_client("viewer")
    assert viewer.get("/api/edfi/rights").json() == {"user": "viewer", "read": True, "write": False}
    r = viewer.post("/api/edfi/resync", json=body)
    assert r.status_code == 403 and "Write rights needed" in r.json()["detail"]
    for role in ("user", "op", "admin"):
        assert page_client(role).get("/api/edfi/rights").json()["write"] is True, role
    for path in READ_ROUTES:  # an unknown role: nothing
        r = page_client("nobody").get(path)
        assert r.status_code == 403, (path, r.text)
    # the auth manager failing answers no, never yes
    monkeypatch.setattr(rights, "_auth_manager", lambda: (_ for _ in ()).throw(RuntimeError("down")))
    for path in READ_ROUTES:
        assert page_client("admin").get(path).status_code == 403, path
    assert page_client("admin").post("/api/edfi/resync", json=body).status_code == 403
    assert page_client("admin").post("/api/edfi/plan", json=body).status_code == 403


def test_read_needs_the_edfi_dag_and_write_needs_its_runs(page_client, seeded, monkeypatch):
    """Rights on the Campus DAGs alone do not open the Ed-Fi tab."""
    from campus_sync.web import rights

    real = rights.dag_allowed
    monkeypatch.setattr(rights, "dag_allowed",
                        lambda user, method, dag_id: False if dag_id == rights.EDFI and method == "POST"
                        else real(user, method, dag_id))
    user = page_client("user")
    assert user.get("/api/edfi/configurations").status_code == 200
    assert user.post("/api/edfi/resync", json={"configuration": "demo", "all_schools": True}).status_code == 403
    monkeypatch.setattr(rights, "dag_allowed",
                        lambda user, method, dag_id: False if dag_id == rights.EDFI else real(user, method, dag_id))
    assert user.get("/api/edfi/configurations").status_code == 403
    assert user.get("/api/me").status_code == 200  # the Campus tabs still open


def test_history_error_report_and_read_only(page_client, seeded, make_db, tmp_path, monkeypatch):
    from campus_sync.edfi import resync

    api = start_fresh_api(make_db, tmp_path)
    try:
        point_connection(monkeypatch, api)
        summary = resync.run({"configuration": "demo", "all_schools": True}, user="tester")
    finally:
        api.stop()
    c = page_client("viewer")
    (req,) = c.get("/api/edfi/history").json()["requests"]
    assert req["id"] == summary["batch_id"] and req["kind"] == "edfi_resync"
    students = {r["object"]: r for r in req["results"]}["students"]
    assert students["inserted"] > 0 and students["error_reasons"].get("no_edfi_id", 0) >= 1
    r = c.get(f"/api/edfi/{summary['batch_id']}/failed.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and {x["reason"] for x in rows} == {"no_edfi_id"}
    assert sum(1 for x in rows if x["resource"] == "students") == students["error_reasons"]["no_edfi_id"]
    assert c.get("/api/edfi/999999/failed.csv").status_code == 404
    assert c.get("/api/edfi/0/failed.csv").status_code == 422
    assert c.get("/api/edfi/read-only").json() == {"read_only": []}  # finished: nothing locked

    # a running request's combinations are read only, named by school and resource
    req_ = resync.parse_request({"configuration": "demo", "schools": [str(seeded["schools"][0])],
                                 "resources": ["schools"], "select_dependencies": False})
    batch = resync.start(req_, user="other", dag_id="edfi_resync", run_id="manual__held")
    try:
        held = c.get("/api/edfi/read-only?configuration=demo").json()["read_only"]
        assert [(x["school_id"], x["resource"], x["batch_id"]) for x in held] == [(seeded["schools"][0], "schools", batch)]
        assert c.get("/api/edfi/read-only?configuration=tn").json()["read_only"] == []
    finally:
        resync.finish(batch, {"schools": ("success", None)})


def test_the_page_has_the_tab_and_serves_its_script(page_client, seeded):
    c = page_client("viewer")
    html = c.get("/").text
    assert 'data-tab="edfi"' in html and 'id="tab-edfi"' in html and "static/edfi.js" in html
    for field in ("edfi-conf", "edfi-schools", "edfi-all", "edfi-person-ids", "edfi-course-ids", "edfi-section-ids",
                  "edfi-resources", "edfi-deps", "edfi-cleanup", "edfi-start", "edfi-readonly"):
        assert f'id="{field}"' in html, field
    js = c.get("/static/edfi.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "api/edfi/plan" in js.text
    assert page_client("nobody").get("/static/edfi.js").status_code == 403
