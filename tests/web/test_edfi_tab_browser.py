"""The Ed-Fi Resync tab in a real browser (Playwright driving Debian's Chromium) over the page's
app served by uvicorn, signed in with JWTs of Airflow's simple auth manager, after a real resync
of configuration demo against a real local Ed-Fi API. Covers the form (schools by name, resources
in dependency order, Run Clean-up only for Tennessee), Start Resync's plan in order, the results
per resource with the error report, the read-only combinations, and the rights (a viewer cannot
start). Starting a run end to end goes through Airflow's REST API: tests/live covers that path."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
from resync_helpers import point_connection, seed_edfi, start_fresh_api  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.airflow]
CHROMIUM = os.environ.get("CAMPUS_SYNC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def served(deployment, airflow_db, make_db, tmp_path, monkeypatch):
    """The page at http://127.0.0.1:<port>/campus-sync/ after one Ed-Fi resync; tokens per role."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    import uvicorn
    from fastapi import FastAPI

    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from campus_sync.edfi import resync
    from campus_sync.web import app as web_app

    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    point_connection(monkeypatch, api)
    summary = resync.run({"configuration": "demo", "all_schools": True}, user="tester")
    assert summary["status"] == "complete", [(r["object"], r["status"], r.get("message")) for r in summary["results"]]
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
    yield {"url": f"http://127.0.0.1:{port}/campus-sync/", "port": port, "tokens": tokens,
           "batch": summary["batch_id"], **deployment}
    server.should_exit = True
    thread.join(timeout=10)
    api.stop()


@pytest.fixture
def browser(served):
    """After `served`: Playwright's sync API runs an event loop in this thread, and the resync
    (asyncio.run) must not run inside it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_tab(browser, served, user: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(60_000)
    ctx.add_cookies([{"name": "_token", "value": served["tokens"][user], "domain": "127.0.0.1", "path": "/"}])
    page = ctx.new_page()
    page.goto(served["url"])
    page.wait_for_selector("body[data-ready='1']")
    page.click('.tabs button[data-tab="edfi"]')
    page.wait_for_selector("#edfi-history .edfi-request")
    return page


def test_the_tab_plans_shows_results_and_errors(browser, served):
    page = open_tab(browser, served, "user")
    with psycopg.connect(served["districts"]["0101"]) as conn:
        schools = conn.execute("SELECT schoolid, name FROM campus.school ORDER BY schoolid").fetchall()
    shown = page.eval_on_selector_all("#edfi-schools option", "os => os.map(o => [o.value, o.textContent])")
    assert [int(v) for v, _ in shown] == [s for s, _ in schools]
    assert all(name in text for (_, text), (_, name) in zip(shown, schools))  # by name
    resources = page.eval_on_selector_all("input.edfi-resource", "cs => cs.map(c => c.value)")
    assert resources.index("schools") < resources.index("sessions") < resources.index("sections")
    assert page.is_hidden("#edfi-cleanup-row")  # demo is KY: no Run Clean-up
    assert "off-peak" in page.text_content("#edfi-all-warning")

    # results per resource of the resync, and its error report
    rows = page.eval_on_selector_all("#edfi-history .edfi-request:first-child tbody tr",
                                     "rs => rs.map(r => r.dataset.resource)")
    assert set(rows) >= {"schools", "students", "studentSectionAssociations"}
    students = page.text_content('#edfi-history tr[data-resource="students"]')
    assert "no_edfi_id" in students
    with page.expect_download() as dl:
        page.click("#edfi-history .edfi-request:first-child a.edfi-errors")
    text = Path(dl.value.path()).read_text()
    assert text.startswith("resource,operation,natural_key") and "no_edfi_id" in text
    assert "nothing is read only" in page.text_content("#edfi-readonly")

    # Start Resync shows the planned resources in order first
    page.select_option("#edfi-schools", str(schools[0][0]))
    page.check('input.edfi-resource[value="sections"]')
    page.click("#edfi-start")
    page.wait_for_selector("#confirm[open] ol.edfi-plan")
    planned = page.eval_on_selector_all("#confirm ol.edfi-plan li", "ls => ls.map(l => l.textContent)")
    assert planned == ["1. schools", "2. courses", "3. sessions", "4. courseOfferings", "5. sections"]
    added = page.eval_on_selector_all("#confirm ol.edfi-plan li.added", "ls => ls.length")
    assert added == 4  # everything but sections came from Select Dependencies
    page.click("#confirm-cancel")
    page.wait_for_selector("#confirm", state="hidden")

    # a bad form is answered naming the value, nothing planned
    page.uncheck("#edfi-deps")
    page.fill("#edfi-person-ids", "12 x7")
    page.click("#edfi-start")
    page.wait_for_function("document.querySelector('#edfi-flash').textContent.includes('x7')")
    assert page.query_selector("#confirm[open]") is None  # refused before any plan is shown
    page.context.close()


def test_viewer_cannot_start(browser, served):
    page = open_tab(browser, served, "viewer")
    assert page.is_disabled("#edfi-start")
    assert page.get_attribute("#edfi-start", "title") == "Write rights needed"
    page.context.close()
