"""The plugin in a real Airflow: listed, mounted, and every route enforces Read/Write/Delete
server-side for real users of the simple auth manager (tokens from /auth/token)."""

from __future__ import annotations

import time
from urllib.parse import quote

import psycopg
import pytest

from page_helpers import CAMPUS_DAGS, api, is_paused, set_paused, wait_run

pytestmark = [pytest.mark.db, pytest.mark.live]
CSRF = {"X-Campus-Sync": "1"}


def test_plugin_listed_with_app_and_nav_entry(page_airflow):
    status, body = api(page_airflow, "GET", "/api/v2/plugins", user="viewer")
    assert status == 200
    plugin = next(p for p in body["plugins"] if p["name"] == "campus_state_sync")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/campus-sync"
    view = plugin["external_views"][0]
    assert view["name"] == "Resync State Data" and view["href"] == "/campus-sync/"
    assert view["url_route"] == "resync-state-data"


@pytest.mark.parametrize("path", ["/campus-sync/", "/campus-sync/api/me", "/campus-sync/api/resync",
                                  "/campus-sync/api/history", "/campus-sync/api/history.csv",
                                  "/campus-sync/static/app.js", "/campus-sync/api/verification",
                                  "/campus-sync/api/alerts", "/campus-sync/api/selective/1/report.pdf"])
def test_signed_out_is_refused_everywhere(page_airflow, path):
    status, _ = api(page_airflow, "GET", path)
    assert status == 401
    status, _ = api(page_airflow, "GET", path, token="not-a-jwt")
    assert status in (401, 403)


def test_signed_out_page_offers_sign_in(page_airflow):
    status, body = api(page_airflow, "GET", "/campus-sync/", headers={"Accept": "text/html"})
    assert status == 401 and "/auth/login" in body


@pytest.mark.parametrize("user, expected", [
    ("viewer", {"read": True, "write_resync": False, "write_selective": False, "write_verification": False,
                "delete": False}),
    ("user", {"read": True, "write_resync": True, "write_selective": True, "write_verification": True,
              "delete": False}),
    ("admin", {"read": True, "write_resync": True, "write_selective": True, "write_verification": True,
               "delete": True}),
])
def test_rights_per_role(page_airflow, user, expected):
    status, body = api(page_airflow, "GET", "/campus-sync/api/me", user=user)
    assert status == 200 and body == {"user": user, "rights": expected}
    status, rows = api(page_airflow, "GET", "/campus-sync/api/resync?district=0101", user=user)
    status, catalog = api(page_airflow, "GET", "/campus-sync/api/catalog", user=user)
    offered = [o["name"] for o in catalog["years"]["current"]["objects"]]
    assert status == 200 and [r["object"] for r in rows["rows"]] == offered and "District" in offered


def test_viewer_cannot_send_sync_verify_or_clear(page_airflow):
    body = {"objects": ["School"], "districts": ["0101"]}
    assert api(page_airflow, "POST", "/campus-sync/api/resync", user="viewer", body=body, headers=CSRF)[0] == 403
    assert api(page_airflow, "POST", "/campus-sync/api/selective", user="viewer", headers=CSRF,
               body={"object": "PersonIdentity", "ids": "1", "district": "0101"})[0] == 403
    assert api(page_airflow, "POST", "/campus-sync/api/verification/run", user="viewer", body={},
               headers=CSRF)[0] == 403
    assert api(page_airflow, "POST", "/campus-sync/api/history/clear", user="viewer",
               body={"confirm": True}, headers=CSRF)[0] == 403
    # Reading the plan is allowed (it changes nothing).
    status, plan = api(page_airflow, "POST", "/campus-sync/api/plan", user="viewer", body=body, headers=CSRF)
    assert status == 200 and plan["objects"] == ["District", "School"] and plan["dag_id"] == "campus_partial_resync"


def test_state_changes_need_the_page_header(page_airflow):
    status, body = api(page_airflow, "POST", "/campus-sync/api/history/clear", user="admin", body={"confirm": True})
    assert status == 403 and "x-campus-sync" in body["detail"]


def test_bad_requests_are_refused_naming_the_problem(page_airflow):
    status, body = api(page_airflow, "POST", "/campus-sync/api/plan", user="user", headers=CSRF,
                       body={"objects": ["Nope"], "districts": ["0101"]})
    assert status == 400 and "Nope" in body["detail"]
    status, body = api(page_airflow, "POST", "/campus-sync/api/selective", user="user", headers=CSRF,
                       body={"object": "PersonIdentity", "ids": "12, x7", "district": "0101"})
    assert status == 400 and "'x7'" in body["detail"]
    status, body = api(page_airflow, "GET", "/campus-sync/api/resync?district=9999", user="user")
    assert status == 400 and "9999" in body["detail"]


def test_user_sends_a_resync_as_themself(page_airflow):
    """Write: the run is created through Airflow's API with the user's identity."""
    status, run = api(page_airflow, "POST", "/campus-sync/api/resync", user="user", headers=CSRF,
                      body={"objects": ["School"], "districts": ["0101"], "check_dependencies": True})
    assert status == 200, run
    assert run["dag_id"] == "campus_partial_resync" and run["plan"]["objects"] == ["District", "School"]
    status, dag_run = api(page_airflow, "GET", f"/api/v2/dags/campus_partial_resync/dagRuns/{quote(run['dag_run_id'], safe='')}",
                          user="admin")
    assert dag_run["triggering_user_name"] == "user"
    # The first task records the request as the triggering user (the browser test waits for a
    # whole run to succeed; here the identity is what matters).
    deadline = time.monotonic() + 900
    batch = None
    while time.monotonic() < deadline and batch is None:
        status, progress = api(page_airflow, "GET", "/campus-sync/api/progress?dag_id=campus_partial_resync"
                               f"&run_id={quote(run['dag_run_id'], safe='')}", user="viewer")
        assert status == 200 and progress["state"] != "failed", progress
        batch = progress["batch"]
        time.sleep(2)
    assert batch is not None and batch["kind"] == "partial" and batch["objects"] == ["District", "School"]
    status, hist = api(page_airflow, "GET", "/campus-sync/api/history?per_page=1", user="viewer")
    assert hist["items"][0]["requested_by"] == "user" and hist["items"][0]["id"] == batch["id"]


def test_user_cannot_clear_and_nothing_is_deleted(page_airflow):
    with psycopg.connect(page_airflow.state_dsn) as conn:
        before = conn.execute("SELECT count(*) FROM sync.batch").fetchone()[0]
    status, body = api(page_airflow, "POST", "/campus-sync/api/history/clear", user="user",
                       body={"confirm": True}, headers=CSRF)
    assert status == 403 and "Delete rights" in body["detail"]
    with psycopg.connect(page_airflow.state_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM sync.batch").fetchone()[0] == before >= 1


def test_bad_numbers_and_unknown_fields_answer_422(page_airflow):
    status, body = api(page_airflow, "GET", "/campus-sync/api/history?page=99999999999999999999", user="viewer")
    assert status == 422 and "page" in body["detail"]
    status, body = api(page_airflow, "GET", "/campus-sync/api/history/99999999999999999999", user="viewer")
    assert status == 422 and "batch_id" in body["detail"]
    status, body = api(page_airflow, "POST", "/campus-sync/api/resync", user="user", headers=CSRF,
                       body={"objects": ["School"], "districts": ["0101"], "confirm_delete": True})
    assert status == 422 and "confirm_delete" in body["detail"]


def test_only_delete_rights_confirm_deletes(page_airflow):
    body = {"objects": ["School"], "districts": ["0101"], "confirm_deletes": True}
    status, refused = api(page_airflow, "POST", "/campus-sync/api/resync", user="user", headers=CSRF, body=body)
    assert status == 403 and "Delete rights" in refused["detail"]
    status, plan = api(page_airflow, "POST", "/campus-sync/api/plan", user="user", headers=CSRF, body=body)
    assert status == 200 and plan["conf"]["confirm_deletes"] is True


def test_a_paused_dag_is_shown_its_queued_run_says_why_and_the_page_unpauses_it(page_airflow):
    """New DAGs start paused: a run sent to one waits queued. The page says so before and after
    sending, a user with edit rights unpauses it through the page (Airflow's REST API as that
    user), a viewer is told who can; then the run starts and ends."""
    dag = "campus_partial_resync"
    set_paused(page_airflow, dag, True)
    try:
        status, dags = api(page_airflow, "GET", "/campus-sync/api/dags", user="viewer")
        assert status == 200 and set(dags["dags"]) == {*CAMPUS_DAGS, "edfi_resync"}  # a viewer reads the Ed-Fi tab too
        seen = dags["dags"][dag]
        assert seen["is_paused"] is True and seen["can_unpause"] is False and seen["max_active_runs"] == 1
        assert "admin" in seen["who_can_unpause"] and "user" in seen["who_can_unpause"]
        assert "viewer" not in seen["who_can_unpause"].split(": ", 1)[1]
        assert dags["dags"]["campus_selective_sync"]["is_paused"] is False
        assert api(page_airflow, "GET", "/campus-sync/api/dags", user="user")[1]["dags"][dag]["can_unpause"] is True

        status, run = api(page_airflow, "POST", "/campus-sync/api/resync", user="user", headers=CSRF,
                          body={"objects": ["District"], "districts": ["0101"]})
        assert status == 200, run
        progress_url = f"/campus-sync/api/progress?dag_id={dag}&run_id={quote(run['dag_run_id'], safe='')}"
        time.sleep(5)  # several scheduler loops: a paused DAG's run stays queued
        status, progress = api(page_airflow, "GET", progress_url, user="viewer")
        assert status == 200 and progress["state"] == "queued", progress
        assert progress["waiting"]["paused"] is True and progress["waiting"]["can_unpause"] is False
        assert any(f"{dag} is paused" in r for r in progress["waiting"]["reasons"]), progress["waiting"]

        status, refused = api(page_airflow, "POST", f"/campus-sync/api/dags/{dag}/unpause", user="viewer",
                              headers=CSRF, body={})
        assert status == 403 and "admin" in refused["detail"] and is_paused(page_airflow, dag)
        assert api(page_airflow, "POST", "/campus-sync/api/dags/example_dag/unpause", user="admin",
                   headers=CSRF, body={})[0] == 404
        assert api(page_airflow, "POST", f"/campus-sync/api/dags/{dag}/unpause", user="user", body={})[0] == 403

        status, done = api(page_airflow, "POST", f"/campus-sync/api/dags/{dag}/unpause", user="user",
                           headers=CSRF, body={})
        assert status == 200 and done == {"dag_id": dag, "is_paused": False}
        assert not is_paused(page_airflow, dag)
        assert wait_run(page_airflow, dag, run["dag_run_id"]) == "success"
    finally:
        set_paused(page_airflow, dag, False)


def test_admin_clears_history(page_airflow):
    status, preview = api(page_airflow, "GET", "/campus-sync/api/history/clear", user="admin")
    assert status == 200
    status, body = api(page_airflow, "POST", "/campus-sync/api/history/clear", user="admin", headers=CSRF,
                       body={"confirm": False})
    assert status == 400 and "confirmation" in body["detail"]
    status, body = api(page_airflow, "POST", "/campus-sync/api/history/clear", user="admin", headers=CSRF,
                       body={"confirm": True})
    assert status == 200 and body["deleted"]["requests"] == preview["requests"]
    left = api(page_airflow, "GET", "/campus-sync/api/history", user="admin")[1]["items"]
    assert all(b["status"] == "running" for b in left)  # running requests are never cleared
