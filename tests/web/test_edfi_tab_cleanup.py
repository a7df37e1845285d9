"""The Ed-Fi Resync tab's Run Clean-up Logic: the form's Confirm clean-up switch, the routes'
checks, the plan saying what the clean-up will do, and the request's clean-up summary, in a real
browser after a real dry run against a real local Ed-Fi API. Also: edfi.js uses app.js's helpers
(escaping, JSON calls, the dialog) rather than copies of them."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cleanup_helpers import ods_only_section, schools, tennessee_config  # noqa: E402
from resync_helpers import point_connection, seed_edfi, start_fresh_api  # noqa: E402
from test_edfi_tab_browser import ARGS, CHROMIUM, open_tab  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.airflow]


@pytest.mark.parametrize("body, message", [
    ({"configuration": "tn", "all_schools": True, "confirm_cleanup": True}, "confirm_cleanup needs run_cleanup"),
    ({"configuration": "tn", "all_schools": True, "run_cleanup": True, "section_ids": "7"},
     "run_cleanup cannot be narrowed by course_ids or section_ids"),
])
def test_plan_refuses_a_bad_cleanup(page_client, deployment, body, message):
    r = page_client("viewer").post("/api/edfi/plan", json=body)
    assert r.status_code == 400 and message in r.json()["detail"], r.text


def test_plan_passes_confirm_cleanup_to_the_run(page_client, deployment):
    r = page_client("viewer").post("/api/edfi/plan", json={"configuration": "tn", "all_schools": True,
                                                           "run_cleanup": True, "confirm_cleanup": True})
    assert r.status_code == 200, r.text
    assert r.json()["conf"]["run_cleanup"] is True and r.json()["conf"]["confirm_cleanup"] is True
    r = page_client("viewer").post("/api/edfi/plan", json={"configuration": "tn", "all_schools": True,
                                                           "confirm_cleanup": "yes"})
    assert r.status_code == 422  # a switch is true or false


def test_edfi_js_uses_the_page_helpers(page_client, deployment):
    c = page_client("viewer")
    app_js, edfi_js = c.get("/static/app.js").text, c.get("/static/edfi.js").text
    assert "window.CampusSync = Object.freeze(" in app_js
    assert "window.CampusSync" in edfi_js
    for copy in ("function esc(", "async function api(", "function confirmDialog(", "await fetch("):
        assert copy not in edfi_js, copy
    html = c.get("/").text
    assert html.index("static/app.js") < html.index("static/edfi.js")  # the helpers load first


@pytest.fixture
def served(deployment, airflow_db, make_db, tmp_path, monkeypatch):
    """The page after a dry-run clean-up of configuration demo (here in Tennessee) that found a
    section posted straight to the API."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    import uvicorn
    from fastapi import FastAPI

    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from campus_sync.edfi import cleanup
    from campus_sync.web import app as web_app

    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    tennessee_config(tmp_path, monkeypatch)
    assert cleanup.run({"configuration": "demo", "all_schools": True}, user="tester")["status"] == "complete"
    a = schools(deployment["districts"]["0101"])[0]
    ods_only_section(info, a, "ODS-ONLY-PAGE")
    dry = cleanup.run({"configuration": "demo", "schools": [a], "run_cleanup": True}, user="tester")
    assert dry["status"] == "complete", dry
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,user:user")
    manager = airflow_app.init_auth_manager()
    root = FastAPI()
    root.mount("/campus-sync", web_app.create_app())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    tokens = {n: manager.generate_jwt(SimpleAuthManagerUser(username=n, role=n)) for n in ("viewer", "user")}
    yield {"url": f"http://127.0.0.1:{port}/campus-sync/", "port": port, "tokens": tokens, "school": a,
           "batch": dry["batch_id"], **deployment}
    server.should_exit = True
    thread.join(timeout=10)
    api.stop()


@pytest.fixture
def browser(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_the_tab_offers_and_reports_the_cleanup(browser, served):
    page = open_tab(browser, served, "user")
    # the request's clean-up summary: the dry run found the section and its student association
    summary = page.text_content("#edfi-history .edfi-request:first-child details.edfi-cleanup")
    assert "dry run" in summary and "sections: " in summary and "1 not in Campus, 0 deleted" in summary
    assert "students: not cleaned" in summary
    row = page.text_content('#edfi-history .edfi-request:first-child tr[data-resource="sections"]')
    assert "cleanup_dry_run 1" in row

    # demo is in Tennessee here: the clean-up is offered, Confirm clean-up only once it is ticked
    assert page.is_visible("#edfi-cleanup-row") and page.is_disabled("#edfi-cleanup-confirm")
    page.select_option("#edfi-schools", str(served["school"]))
    page.check("#edfi-cleanup")
    assert page.is_enabled("#edfi-cleanup-confirm")
    page.click("#edfi-start")
    page.wait_for_selector("#confirm[open] .edfi-cleanup-note")
    assert "dry run" in page.text_content("#confirm .edfi-cleanup-note")
    page.click("#confirm-cancel")
    page.wait_for_selector("#confirm", state="hidden")
    page.check("#edfi-cleanup-confirm")
    page.click("#edfi-start")
    page.wait_for_selector("#confirm[open] .edfi-cleanup-note")
    assert "deleted" in page.text_content("#confirm .edfi-cleanup-note")
    page.click("#confirm-cancel")
    page.wait_for_selector("#confirm", state="hidden")
    page.uncheck("#edfi-cleanup")  # unticking the clean-up unticks and locks its confirmation
    assert page.is_disabled("#edfi-cleanup-confirm") and not page.is_checked("#edfi-cleanup-confirm")
    page.context.close()
