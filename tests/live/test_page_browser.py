"""The Resync State Data page in a real browser (Playwright driving Debian's Chromium) against
a real Airflow with the plugin, after the demo's full resync of district 0101 (fixture `page_airflow`, on the shared `live_airflow`).

The tests run in file order and build on each other like a user's session: log in, read the
results, tick with Check dependencies, Send Resync (real run), history, Clear History (viewer
refused, admin allowed), Selective Sync with its PDF, Verification Summary. Screenshots of each
view go to $CAMPUS_SYNC_SCREENSHOTS (`make screenshots`: docs/screenshots/).
"""

from __future__ import annotations

import time

import os
import re
import tempfile
from pathlib import Path

import psycopg
import pytest

from page_helpers import api

pytestmark = [pytest.mark.db, pytest.mark.live]
CHROMIUM = os.environ.get("CAMPUS_SYNC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots of each view: into a temporary folder, unless CAMPUS_SYNC_SCREENSHOTS names one
# (`make screenshots` refreshes the README's docs/screenshots/); a test run leaves the tree clean.
SHOTS = Path(os.environ.get("CAMPUS_SYNC_SCREENSHOTS") or tempfile.mkdtemp(prefix="campus-sync-shots-"))
RUN_TIMEOUT = 1_200_000  # ms: every object task of a resync DAG re-parses the DAG file; slow on a loaded machine


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def login(browser, live, user: str):
    """Sign in through Airflow's own login form; returns a page on the plugin."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(120_000)  # a busy 2-core machine: Airflow's UI bundle loads slowly
    page = ctx.new_page()
    page.goto(f"{live.url}/auth/login?next=/campus-sync/", wait_until="domcontentloaded")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", live.passwords[user])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/campus-sync/$"))
    page.wait_for_selector("body[data-ready='1']")
    return page


@pytest.fixture(scope="module")
def admin(browser, page_airflow):
    page = login(browser, page_airflow, "admin")
    yield page
    page.context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def expected_colour(processed: int, errors: int) -> str:
    if errors == 0:
        return "green"
    return "yellow" if errors * 100 <= processed else "red"


def test_nav_entry_opens_the_page_inside_airflow(browser, page_airflow, admin):
    page = admin.context.new_page()
    page.goto(f"{page_airflow.url}/", wait_until="domcontentloaded")
    page.get_by_role("link", name="Resync State Data").first.click()
    page.wait_for_url(re.compile(r".*/plugin/resync-state-data"))
    frame = page.frame_locator("iframe").first
    frame.locator("h1", has_text="Resync State Data").wait_for()
    frame.locator("#resync-table tbody tr").first.wait_for()
    shot(page, "airflow-nav")
    page.close()


def test_resync_view_shows_the_demo_results_in_colour(admin, page_airflow):
    page = admin
    page.locator("#resync-table tbody tr[data-object='District']").wait_for()
    rows = page.locator("#resync-table tbody tr")
    names = rows.evaluate_all("rs => rs.map(r => r.dataset.object)")
    status, api_rows = api(page_airflow, "GET", "/campus-sync/api/resync?district=0101", user="admin")
    assert names == [r["object"] for r in api_rows["rows"]]  # hierarchy (run) order, every offered object
    seen = set()
    for r in api_rows["rows"]:
        assert r["last_resync"] is not None, f"{r['object']} has no demo result"
        want = expected_colour(r["processed"], r["errors"])
        dot = page.locator(f"#resync-table tr[data-object='{r['object']}'] .dot")
        assert dot.get_attribute("data-status") == want, r["object"]
        seen.add(want)
    assert {"green", "yellow"} <= seen or {"green", "red"} <= seen  # the demo has refusals
    colour = page.locator("#resync-table tr[data-object='District'] .dot").evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(56, 161, 105)"
    bad = next(r for r in api_rows["rows"] if r["errors"])
    text = page.locator(f"#resync-table tr[data-object='{bad['object']}'] td").nth(3).inner_text()
    assert f"Processed: {bad['processed']} Errors: {bad['errors']}" in text
    page.locator(f"#resync-table tr[data-object='{bad['object']}'] details.reasons summary").click()
    reason, count = bad["error_reasons"][0]
    assert f"{reason}: {count}" in page.locator(f"#resync-table tr[data-object='{bad['object']}'] details").inner_text()
    page.click("#legend-link")
    assert page.locator("#legend").is_visible()
    shot(page, "resync")
    page.click("#legend-link")


def test_check_dependencies_ticks_enrollments_five_ancestors(admin):
    page = admin
    assert page.is_checked("#check-deps")
    page.check("input.pick[data-object='Enrollment']")
    ticked = page.locator("input.pick:checked").evaluate_all("bs => bs.map(b => b.dataset.object)")
    assert sorted(ticked) == sorted(["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity",
                                     "Enrollment"])
    page.locator("input.pick:checked").evaluate_all("bs => bs.forEach(b => { b.checked = false; })")
    page.uncheck("#check-deps")
    page.check("input.pick[data-object='Enrollment']")
    assert page.locator("input.pick:checked").count() == 1
    page.uncheck("input.pick[data-object='Enrollment']")
    page.check("#check-deps")


def test_school_year_offers_only_year_objects(admin):
    page = admin
    page.select_option("#school-year", "previous")
    page.wait_for_function("() => !document.querySelector(\"#resync-table tr[data-object='District']\")")
    assert page.locator("#resync-table tr[data-object='Enrollment']").count() == 1
    page.select_option("#school-year", "current")
    page.locator("#resync-table tr[data-object='District']").wait_for()


def test_send_resync_shows_plan_confirms_runs_and_updates(admin, page_airflow):
    page = admin
    before = page.locator("#resync-table tr[data-object='Enrollment'] td").nth(2).inner_text()
    page.check("input.pick[data-object='Enrollment']")
    page.click("#send-resync")
    page.locator("#confirm[open]").wait_for()
    plan = page.locator("#plan-objects").inner_text()
    for obj in ("District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment"):
        assert obj in plan
    assert page.locator("#plan-districts").inner_text() == "0101"
    shot(page, "send-resync-plan")
    page.click("#confirm-ok")
    page.locator("#resync-progress").wait_for(state="visible")
    page.wait_for_function("() => ['success', 'failed'].includes(document.querySelector('#resync-progress').dataset.state)",
                           timeout=RUN_TIMEOUT)
    assert page.locator("#resync-progress").get_attribute("data-state") == "success"
    page.wait_for_function(
        "b => document.querySelector(\"#resync-table tr[data-object='Enrollment'] td:nth-child(3)\").innerText !== b",
        arg=before, timeout=30_000)
    # another test's run of the same DAG may follow this one (max_active_runs=1) and show gray
    # while it syncs: reload until the object shows a finished colour
    dot = "#resync-table tr[data-object='Enrollment'] .dot"
    deadline = time.monotonic() + RUN_TIMEOUT / 1000
    while page.locator(dot).get_attribute("data-status") not in ("green", "yellow", "red"):
        assert time.monotonic() < deadline, "Enrollment never left gray"
        page.wait_for_timeout(5000)
        page.reload()
        page.locator(dot).wait_for()
    shot(page, "resync-after-send")


def test_history_lists_the_request(admin):
    page = admin
    page.click(".tabs button[data-tab='history']")
    first = page.locator("#history-table tbody tr").first
    first.wait_for()
    assert first.get_attribute("data-kind") == "partial"
    text = first.inner_text()
    assert "admin" in text and "Enrollment" in text and "complete" in text
    first.click()
    page.locator("#detail-table tr[data-object='Enrollment']").wait_for()
    objects = page.locator("#detail-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.object)")
    assert objects == ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment"]
    shot(page, "history")


def test_clear_history_refused_for_viewer(browser, page_airflow):
    page = login(browser, page_airflow, "viewer")
    try:
        assert page.is_disabled("#send-resync")
        page.click(".tabs button[data-tab='history']")
        page.locator("#history-table tbody tr[data-batch]").first.wait_for()
        page.click("#clear-history")
        page.locator("#confirm[open]").wait_for()
        page.click("#confirm-ok")
        page.wait_for_function("() => document.querySelector('#flash').textContent.includes('403')")
        assert "Delete rights" in page.locator("#flash").inner_text()
        assert page.locator("#history-table tbody tr[data-batch]").count() >= 2
    finally:
        page.context.close()


def test_selective_sync_known_and_unknown_id_and_pdf(admin, page_airflow):
    page = admin
    with psycopg.connect(page_airflow.state_dsn) as conn:
        known = conn.execute("SELECT min(personid) FROM state.personidentity WHERE district_id = %s",
                             (page_airflow.district,)).fetchone()[0]
    page.click(".tabs button[data-tab='selective']")
    page.select_option("#sel-object", "PersonIdentity")
    page.fill("#sel-ids", f"{known}\n987654321")
    page.click("#sel-sync")
    page.wait_for_function("() => ['success', 'failed'].includes(document.querySelector('#selective-progress').dataset.state)",
                           timeout=RUN_TIMEOUT)
    assert page.locator("#selective-progress").get_attribute("data-state") == "success"
    row = page.locator("#selective-table tbody tr").first
    page.wait_for_function("() => (document.querySelector('#selective-table tbody tr .records') || {innerText: ''})"
                           ".innerText.includes('1/2')")
    assert "Records: 1/2" in row.inner_text()
    shot(page, "selective-sync")
    with page.expect_download() as dl:
        row.locator("a.pdf").click()
    path = dl.value.path()
    assert dl.value.suggested_filename.endswith(".pdf") and Path(path).read_bytes()[:5] == b"%PDF-"


def test_verification_shows_100_percent_after_the_demo(admin):
    page = admin
    page.click(".tabs button[data-tab='verification']")
    page.click("#reverify")
    page.wait_for_function("() => ['success', 'failed'].includes(document.querySelector('#verify-progress').dataset.state)",
                           timeout=RUN_TIMEOUT)
    assert page.locator("#verify-progress").get_attribute("data-state") == "success"
    page.locator("#verify-districts tr[data-district='0101']").wait_for()
    assert page.locator("#verify-districts tr[data-district='0101'] .accuracy").inner_text() == "100.00%"
    accuracies = page.locator("#verify-objects .accuracy").all_inner_texts()
    assert accuracies and set(accuracies) == {"100.00%"}
    shot(page, "verification")


def test_process_alerts_tab_never_shows_objects(admin, page_airflow):
    """A state request's alert (written by the same function the DAG's first task calls)."""
    from campus_sync import alerts

    with psycopg.connect(page_airflow.state_dsn) as conn:
        alerts.add_state_resync_requested(conn, [page_airflow.district], end_year=2027,
                                          dag_id="campus_partial_resync", run_id="browser-test")
        conn.commit()
    page = admin
    page.click(".tabs button[data-tab='alerts']")
    row = page.locator("#alerts-table tbody tr", has_text="State Resync Requested")
    row.wait_for()
    text = row.inner_text()
    assert "Vertical Interoperability" in text and "2026-27" in text and "Enrollment" not in text
    shot(page, "process-alerts")


def test_clear_history_as_admin(admin):
    page = admin
    page.click(".tabs button[data-tab='history']")
    page.locator("#history-table tbody tr[data-batch]").first.wait_for()
    page.click("#clear-history")
    page.locator("#confirm[open]").wait_for()
    assert "finished request" in page.locator("#confirm-body").inner_text()
    page.click("#confirm-ok")
    page.wait_for_function("() => document.querySelector('#flash').textContent.includes('History cleared')")
    page.wait_for_function("() => !document.querySelector('#history-table tbody tr[data-batch]')")
