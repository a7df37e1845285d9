"""The Resync State Data page in a real browser (Playwright driving Debian's Chromium) against
a real Airflow with the plugin, after the demo's full resync of district 0101 (fixture `page_airflow`, on the shared `live_airflow`).

The tests run in file order and build on each other like a user's session: start from paused
DAGs (a new deployment) and unpause them through the page, log in, read the results, tick with
Check Dependencies, Send Resync (real run), history, Clear History (viewer refused), a resync the
delete guard refuses and its confirmation, Selective Sync with its PDF, Verification Summary,
Clear History of one district (admin). Screenshots of each
view go to $CAMPUS_SYNC_SCREENSHOTS (`make screenshots`: docs/screenshots/).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from page_helpers import CAMPUS_DAGS, api, chromium, district_dsn, is_paused, set_paused, sign_in, wait_quiet

pytestmark = [pytest.mark.db, pytest.mark.live]
# Screenshots of each view: into a temporary folder, unless CAMPUS_SYNC_SCREENSHOTS names one
# (`make screenshots` refreshes the README's docs/screenshots/); a test run leaves the tree clean.
SHOTS = Path(os.environ.get("CAMPUS_SYNC_SCREENSHOTS") or tempfile.mkdtemp(prefix="campus-sync-shots-"))
RUN_TIMEOUT = 1_200_000  # ms: every object task of a resync DAG re-parses the DAG file; slow on a loaded machine


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def login(browser, live, user: str):
    """Sign in through Airflow's own login form; returns a page on the plugin."""
    page = sign_in(browser, live, user, "/campus-sync/", height=900)
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


ZONED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|[+-]\d\d:\d\d)$")


def run_shown(page, sel: str) -> str:
    """The run id a progress box shows ("" before any)."""
    return page.evaluate("s => { const c = document.querySelector(s + ' code'); return c ? c.textContent : ''; }", sel)


def wait_finished(page, sel: str, before: str) -> str:
    """Until the progress box shows a run other than `before` (the one the action started) ended;
    its state. (A box still shows the previous run's end until the new run is watched.)"""
    page.wait_for_function(
        """([s, prev]) => { const e = document.querySelector(s); const c = e && e.querySelector('code');
                           return !!c && c.textContent !== prev && ['success', 'failed'].includes(e.dataset.state); }""",
        arg=[sel, before], timeout=RUN_TIMEOUT)
    return page.locator(sel).get_attribute("data-state")


def expected_colour(processed: int, errors: int) -> str:
    if errors == 0:
        return "green"
    return "yellow" if errors * 100 <= processed else "red"


def test_paused_dags_are_shown_and_unpaused_from_the_page(browser, page_airflow, admin):
    """A new deployment's DAGs are paused: every tab says so before the user acts; a run sent
    anyway says why it waits, and the page's Unpause (as the signed-in admin) lets it start. A
    viewer is told who may unpause, with no button."""
    for dag in CAMPUS_DAGS:
        set_paused(page_airflow, dag, True)
    try:
        viewer = login(browser, page_airflow, "viewer")
        try:
            notice = viewer.locator("#dags-resync .dag-warning.paused[data-dag='campus_partial_resync']")
            notice.wait_for()
            assert "You may not unpause it: ask" in notice.inner_text() and "admin" in notice.inner_text()
            assert viewer.locator("#dags-resync button.unpause").count() == 0
        finally:
            viewer.context.close()

        page = admin
        page.reload()
        page.wait_for_selector("body[data-ready='1']")
        page.click(".tabs button[data-tab='resync']")
        for dag in ("campus_partial_resync", "campus_full_resync"):
            page.locator(f"#dags-resync .dag-warning.paused[data-dag='{dag}'] button.unpause").wait_for()
        shot(page, "paused-dags")
        # Re-Verify while paused: the run waits, and the progress says why and offers to unpause
        page.click(".tabs button[data-tab='verification']")
        page.locator("#dags-verification .dag-warning.paused[data-dag='campus_verification_summary']").wait_for()
        before = run_shown(page, "#verify-progress")
        page.click("#reverify")
        waiting = page.locator("#verify-progress .waiting")
        waiting.wait_for()
        assert "campus_verification_summary is paused" in waiting.inner_text()
        assert page.locator("#verify-progress").get_attribute("data-state") == "queued"
        waiting.locator("button.unpause").click()
        assert wait_finished(page, "#verify-progress", before) == "success"
        assert not is_paused(page_airflow, "campus_verification_summary")
        # the banners' own Unpause buttons
        page.click(".tabs button[data-tab='selective']")
        page.locator("#dags-selective button.unpause[data-dag='campus_selective_sync']").click()
        page.wait_for_function("() => !document.querySelector('#dags-selective .dag-warning.paused')")
        page.click(".tabs button[data-tab='resync']")
        for dag in ("campus_partial_resync", "campus_full_resync"):
            page.locator(f"#dags-resync button.unpause[data-dag='{dag}']").click()
            page.wait_for_function(f"() => !document.querySelector(\"#dags-resync .dag-warning.paused[data-dag='{dag}']\")")
        assert not any(is_paused(page_airflow, d) for d in CAMPUS_DAGS)
    finally:
        for dag in CAMPUS_DAGS:
            set_paused(page_airflow, dag, False)


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
    reason, count, meaning = bad["error_reasons"][0]
    assert meaning  # every code the engine emits has plain-language text, shown beside the code
    said = page.locator(f"#resync-table tr[data-object='{bad['object']}'] details li[data-reason='{reason}']").inner_text()
    assert f"{reason}: {count}" in said and meaning in said
    # times carry their zone
    shown = page.locator("#resync-table tr[data-object='District'] td").nth(2).inner_text().strip()
    assert ZONED.match(shown), shown
    page.click("#legend-link")
    assert page.locator("#legend").is_visible()
    shot(page, "resync")
    page.click("#legend-link")


ENROLLMENT_PARENTS = ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity"]


def test_check_dependencies_shows_enrollments_five_ancestors_added(admin):
    """As the plan dialog says: parents added by Check Dependencies are italic and marked so, not
    ticked as if the user had chosen them."""
    page = admin
    assert page.is_checked("#check-deps")
    page.check("input.pick[data-object='Enrollment']")
    ticked = page.locator("input.pick:checked").evaluate_all("bs => bs.map(b => b.dataset.object)")
    assert ticked == ["Enrollment"]
    added = page.locator("#resync-table tbody tr.added").evaluate_all("rs => rs.map(r => r.dataset.object)")
    assert sorted(added) == sorted(ENROLLMENT_PARENTS)
    row = page.locator("#resync-table tr[data-object='School']")
    assert "added by Check Dependencies" in row.inner_text()
    assert row.locator(".obj").evaluate("e => getComputedStyle(e).fontStyle") == "italic"
    assert "added by Check Dependencies" not in page.locator("#resync-table tr[data-object='Enrollment']").inner_text()
    page.uncheck("#check-deps")
    assert page.locator("#resync-table tbody tr.added").count() == 0
    assert page.locator("input.pick:checked").count() == 1
    page.uncheck("input.pick[data-object='Enrollment']")
    page.check("#check-deps")
    assert page.locator("#resync-table tbody tr.added").count() == 0


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
    italic = page.locator("#plan-objects i.added").all_inner_texts()
    assert sorted(italic) == sorted(ENROLLMENT_PARENTS)  # the same five the table showed added
    assert page.locator("#plan-districts").inner_text() == "0101"
    shot(page, "send-resync-plan")
    before_run = run_shown(page, "#resync-progress")
    page.click("#confirm-ok")
    page.locator("#resync-progress").wait_for(state="visible")
    assert wait_finished(page, "#resync-progress", before_run) == "success"
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
    # the partial request the send test started (other live tests' requests may be listed above it)
    first = page.locator("#history-table tbody tr[data-kind='partial']").filter(has_text="Enrollment").first
    first.wait_for()
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
        listed = page.locator("#history-table tbody tr[data-batch]").count()
        page.click("#clear-history")
        page.locator("#confirm[open]").wait_for()
        page.click("#confirm-ok")
        page.wait_for_function("() => document.querySelector('#flash').textContent.includes('403')")
        assert "Delete rights" in page.locator("#flash").inner_text()
        page.click(".tabs button[data-tab='history']")
        page.wait_for_timeout(1000)
        assert page.locator("#history-table tbody tr[data-batch]").count() == listed >= 1
    finally:
        page.context.close()


def test_statuses_are_escaped_wherever_they_are_written(admin, page_airflow):
    """A status (or any value) with quotes and markup is shown as text, never parsed as HTML."""
    evil = 'x" onmouseover="window.__injected=1" data-evil="1'
    with psycopg.connect(page_airflow.state_dsn) as conn:
        (bid,) = conn.execute(
            "INSERT INTO sync.batch (kind, status, requested_by, districts, objects, end_year, requested_at, completed_at)"
            " VALUES ('selective', 'complete', %s, %s, '{School}', 2027, now(), now()) RETURNING id", ('<b id="evil-user">u</b>', [page_airflow.district])).fetchone()
        conn.execute("INSERT INTO sync.batch_result (batch_id, district_id, object, status, started_at, finished_at,"
                     " error_reasons, message) VALUES (%s, %s, 'School', %s, now(), now(), %s, %s)",
                     (bid, page_airflow.district, evil, '{"<img id=evil-reason>": 1}', '<img id="evil-message">'))
        conn.commit()
    page = admin
    page.click(".tabs button[data-tab='resync']")
    page.click(".tabs button[data-tab='history']")  # reloads the list
    page.locator(f"#history-table tbody tr[data-batch='{bid}']").click()
    page.locator("#history-detail h3", has_text=f"Request {bid}:").wait_for()
    status = page.locator("#detail-table tr[data-object='School'] [data-status]")
    assert status.get_attribute("data-status") == evil and status.get_attribute("title") == evil
    assert page.locator("[data-evil], [onmouseover], #evil-reason, #evil-message, #evil-user").count() == 0
    assert "<img id=evil-reason>" in page.locator("#detail-table tr[data-object='School']").inner_text()
    with psycopg.connect(page_airflow.state_dsn) as conn:
        conn.execute("DELETE FROM sync.batch WHERE id = %s", (bid,))
    page.locator("#history-detail").evaluate("e => { e.hidden = true; }")


def test_a_refused_mass_delete_is_confirmed_on_the_page(browser, admin, page_airflow):
    """Most VaccineShot rows go at the district: the resync is refused by the delete guard; the
    page shows the counts and, for a user with Delete rights, confirms exactly that rerun."""
    with psycopg.connect(page_airflow.state_dsn) as conn:
        held = conn.execute("SELECT count(*) FROM state.vaccineshot WHERE district_id = %s",
                            (page_airflow.district,)).fetchone()[0]
    assert held >= 2, held
    with psycopg.connect(district_dsn(page_airflow)) as conn:
        if held >= 17:  # over half of them, at least the guard's 10 rows: the mass-delete guard
            conn.execute("DELETE FROM campus.vaccineshot WHERE shotid IN (SELECT shotid FROM campus.vaccineshot"
                         " ORDER BY shotid LIMIT %s)", (held * 6 // 10,))
        else:  # every row: the empty-source guard
            conn.execute("DELETE FROM campus.vaccineshot")
        left = conn.execute("SELECT count(*) FROM campus.vaccineshot").fetchone()[0]
    page = admin
    page.click(".tabs button[data-tab='resync']")
    page.locator("input.pick[data-object='VaccineShot']").check()
    page.click("#send-resync")
    page.locator("#confirm[open]").wait_for()
    refused_run = run_shown(page, "#resync-progress")
    page.click("#confirm-ok")
    assert wait_finished(page, "#resync-progress", refused_run) == "failed"
    refused_run = run_shown(page, "#resync-progress")
    offer = page.locator("#resync-progress .refused-offer li[data-object='VaccineShot']")
    offer.wait_for()
    deleted = held - left
    assert f"{deleted}" in offer.inner_text() and f"{held}" in offer.inner_text()
    with psycopg.connect(page_airflow.state_dsn) as conn:  # nothing was written
        assert conn.execute("SELECT count(*) FROM state.vaccineshot WHERE district_id = %s",
                            (page_airflow.district,)).fetchone()[0] == held
    shot(page, "refused-deletes")
    page.locator("#resync-progress button.review-deletes").click()
    page.locator("#confirm[open] #refused-list li[data-object='VaccineShot']").wait_for()
    assert f"{held}" in page.locator("#refused-list").inner_text()
    page.click("#confirm-ok")
    assert wait_finished(page, "#resync-progress", refused_run) == "success"
    with psycopg.connect(page_airflow.state_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM state.vaccineshot WHERE district_id = %s",
                            (page_airflow.district,)).fetchone()[0] == left
        conf = conn.execute("SELECT objects, check_dependencies FROM sync.batch WHERE kind = 'partial'"
                            " ORDER BY id DESC LIMIT 1").fetchone()
    assert conf == (["VaccineShot"], False)
    page.locator("input.pick[data-object='VaccineShot']").uncheck()


def test_selective_sync_known_and_unknown_id_and_pdf(admin, page_airflow):
    page = admin
    with psycopg.connect(page_airflow.state_dsn) as conn:
        known = conn.execute("SELECT min(personid) FROM state.personidentity WHERE district_id = %s",
                             (page_airflow.district,)).fetchone()[0]
    page.click(".tabs button[data-tab='selective']")
    page.select_option("#sel-object", "PersonIdentity")
    page.fill("#sel-ids", f"{known}\n987654321")
    before = run_shown(page, "#selective-progress")
    page.click("#sel-sync")
    assert wait_finished(page, "#selective-progress", before) == "success"
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
    before = run_shown(page, "#verify-progress")
    page.click("#reverify")
    assert wait_finished(page, "#verify-progress", before) == "success"
    page.locator("#verify-districts tr[data-district='0101']").wait_for()
    assert page.locator("#verify-districts tr[data-district='0101'] .accuracy").inner_text() == "100.00%"
    accuracies = page.locator("#verify-objects .accuracy").all_inner_texts()
    assert accuracies and set(accuracies) == {"100.00%"}
    shot(page, "verification")


def test_process_alerts_tab_never_shows_objects(admin, page_airflow):
    """A state request's alert (written by the same function the DAG's first task calls)."""
    from campus_sync.tools import alerts

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


def test_clear_history_as_admin(admin, page_airflow):
    """Clear History says whose history goes (the district shown, by default), how much, and from
    when; the Resync view keeps each object's last result."""
    page = admin
    # Clear History leaves running requests alone, and a run still queued would write a request
    # after it: let every earlier test's runs (and the scheduled DAGs' own) end first.
    wait_quiet(page_airflow)
    page.click(".tabs button[data-tab='resync']")
    page.locator("#resync-table tr[data-object='District'] .dot").wait_for()
    before = page.locator("#resync-table tr[data-object='District'] td").nth(3).inner_text()
    page.click(".tabs button[data-tab='history']")
    page.locator("#history-table tbody tr[data-batch]").first.wait_for()
    page.click("#clear-history")
    page.locator("#confirm[open]").wait_for()
    body = page.locator("#confirm-body")
    page.wait_for_function("() => document.querySelector('#clear-counts .n-requests')")
    assert page.is_checked("input[name=clear-scope][value=district]")
    assert f"of district {page_airflow.district}" in body.inner_text() and "finished request" in body.inner_text()
    status, expected = api(page_airflow, "GET", f"/campus-sync/api/history/clear?district={page_airflow.district}",
                           user="admin")
    assert page.locator("#clear-counts .n-requests").inner_text() == str(expected["requests"])
    page.fill("#clear-before", "2000-01-01")
    page.wait_for_function("() => document.querySelector('#clear-counts').innerText.includes('made before 2000-01-01')")
    assert page.locator("#clear-counts .n-requests").inner_text() == "0"
    page.fill("#clear-before", "")
    page.wait_for_function("() => !document.querySelector('#clear-counts').innerText.includes('made before')")
    assert "Last Resync" in body.inner_text()  # says the Resync view keeps its results
    shot(page, "clear-history")
    page.click("#confirm-ok")
    page.wait_for_function("() => document.querySelector('#flash').textContent.includes('History cleared for district')")
    _, left = api(page_airflow, "GET", f"/campus-sync/api/history?district={page_airflow.district}&per_page=200",
                  user="admin")
    assert not left["items"], [(i["id"], i["kind"], i["status"], i["dag_id"], i["run_id"], i["requested_at"])
                               for i in left["items"]]
    # the table lists every district's requests by default (other live tests sync 0102 too): the
    # shown district's own list is empty
    page.check("#history-this-district")
    page.wait_for_function("() => !document.querySelector('#history-table tbody tr[data-batch]')")
    page.uncheck("#history-this-district")
    page.click(".tabs button[data-tab='resync']")
    page.locator("#resync-table tr[data-object='District'] .dot").wait_for()
    assert page.locator("#resync-table tr[data-object='District'] td").nth(3).inner_text() == before
