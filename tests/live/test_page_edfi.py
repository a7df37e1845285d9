"""The Ed-Fi Resync tab in a real browser (Playwright driving Debian's Chromium), inside the real
live Airflow (`live_airflow`), against the local Ed-Fi API its `demo` connection names
(`live_edfi_api`, real HTTP): what a new user does after `make demo`.

In file order, like a user's session: a `user` (Write) opens the Resync State Data page inside
Airflow, picks configuration demo, one school and one resource with Select Dependencies, sees the
planned resources in order, starts the resync (a real edfi_resync run under the scheduler) and
sees it succeed with per-resource counts; the same resync again sends nothing; a viewer sees the
results but cannot start one. Kept small (one school, five resources): the live suite is long.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest

from page_helpers import api, chromium, district_dsn, is_paused, open_in_airflow, page_airflow_of, set_paused, wait_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
from resync_helpers import token  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.live]
DAG = "edfi_resync"
RESOURCE = "sections"
# sections with Select Dependencies, in the order they are sent (the resource model's references)
PLAN = ["schools", "courses", "sessions", "courseOfferings", "sections"]
RUN_TIMEOUT = 1_200_000  # ms: each task of the run is a process that parses the DAG file; slow on a loaded machine
CSRF = {"X-Campus-Sync": "1"}
COUNTS = ("processed", "inserted", "updated", "deleted", "unchanged", "errors")


@pytest.fixture(scope="module")
def edfi_airflow(live_airflow, live_edfi_api):
    """The live Airflow once the DAG is parsed, with the local Ed-Fi API up."""
    live_airflow.wait_dag(DAG)
    live = page_airflow_of(live_airflow)
    # a manual DAG: created unpaused (as `make airflow` creates it), so a run from the page starts
    assert not is_paused(live, DAG)
    return live


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def user_tab(browser, edfi_airflow):
    """The tab as `user` (Write), inside Airflow's UI; the frame the page is shown in."""
    page, frame = open_in_airflow(browser, edfi_airflow, "user")
    frame.click('.tabs button[data-tab="edfi"]')
    frame.wait_for_selector("#edfi-conf option[value='demo']", state="attached")
    yield frame
    page.context.close()


@pytest.fixture(scope="module")
def school(user_tab, edfi_airflow) -> int:
    """The first school the form offers: one of the district's schools, shown by name."""
    frame = user_tab
    frame.select_option("#edfi-conf", "demo")
    shown = frame.eval_on_selector_all("#edfi-schools option", "os => os.map(o => [o.value, o.textContent])")
    assert shown, "the form offers no school"
    with psycopg.connect(district_dsn(edfi_airflow)) as conn:
        names = dict(conn.execute("SELECT schoolid, name FROM campus.school"))
    value, text = shown[0]
    assert int(value) in names and names[int(value)] in text, (shown, names)
    return int(value)


def shown_run(frame) -> str:
    return frame.evaluate("() => { const c = document.querySelector('#edfi-progress code'); return c ? c.textContent : ''; }")


def start_resync(frame, school: int) -> dict:
    """Fill the form (one school, RESOURCE, Select Dependencies), read the plan the confirmation
    shows, start, and wait until the progress shows the new run ended."""
    frame.select_option("#edfi-conf", "demo")
    frame.select_option("#edfi-schools", str(school))
    assert not frame.is_checked("#edfi-all")
    for box in frame.query_selector_all("input.edfi-resource:checked"):
        box.uncheck()
    frame.check(f"input.edfi-resource[value='{RESOURCE}']")
    assert frame.is_checked("#edfi-deps")  # Select Dependencies is on by default
    before = shown_run(frame)
    frame.click("#edfi-start")
    frame.wait_for_selector("#confirm[open] ol.edfi-plan")
    planned = frame.eval_on_selector_all("#confirm ol.edfi-plan li", "ls => ls.map(l => l.textContent)")
    added = frame.eval_on_selector_all("#confirm ol.edfi-plan li.added", "ls => ls.map(l => l.textContent)")
    where = frame.text_content("#confirm[open]")
    frame.click("#confirm-ok")
    frame.wait_for_function(
        """prev => { const c = document.querySelector('#edfi-progress code');
                     const s = document.querySelector('#edfi-progress .run-state');
                     return !!c && c.textContent !== prev && !!s && ['success', 'failed'].includes(s.textContent); }""",
        arg=before, timeout=RUN_TIMEOUT, polling=1000)
    run_id = shown_run(frame)
    rows = frame.eval_on_selector_all(
        "#edfi-progress table.edfi-results tbody tr",
        "rs => rs.map(r => [r.dataset.resource, [...r.querySelectorAll('td')].map(t => t.innerText.trim())])")
    results = {}
    for resource, cells in rows:
        assert len(cells) == 8, (resource, cells)  # a row with counts, not "planned"
        results[resource] = {"status": cells[1], **{k: int(v.split()[0]) for k, v in zip(COUNTS[:5], cells[2:7])},
                             "errors": int(cells[7].split()[0])}
    return {"run_id": run_id, "state": frame.text_content("#edfi-progress .run-state"), "planned": planned,
            "added": added, "where": where, "order": [r for r, _ in rows], "results": results,
            "flash": frame.text_content("#edfi-flash")}


def history_of(live, run_id: str) -> dict:
    """The request of the run, from the page's API (what `campus-sync history --json` holds)."""
    status, body = api(live, "GET", f"/campus-sync/api/edfi/progress?run_id={quote(run_id, safe='')}", user="viewer")
    assert status == 200 and body["batch"] is not None, body
    return body["batch"]


def at_api(info: dict) -> dict[str, list[dict]]:
    """The documents the Ed-Fi API holds per planned resource (read with one token: the API
    caps the tokens a client may hold, as an ODS/API does)."""
    headers = {"Authorization": f"Bearer {token(info)}"}
    out: dict[str, list[dict]] = {}
    with httpx.Client(timeout=60, headers=headers) as c:
        for resource in PLAN:
            r = c.get(f"{info['data_url']}/ed-fi/{resource}", params={"limit": 500})
            assert r.status_code == 200, r.text
            out[resource] = r.json()
            assert len(out[resource]) < 500  # one page holds one school's documents
    return out


def test_user_resyncs_one_school_with_dependencies_inside_airflow(user_tab, school, edfi_airflow, live_edfi_api):
    """Start Resync shows the plan in dependency order (what Select Dependencies added in
    italics); the run is a real edfi_resync run of the user, under the scheduler; the tab shows
    it succeed with counts per resource, the same the history keeps, and the API holds what was
    created."""
    frame = user_tab
    assert all(not docs for docs in at_api(live_edfi_api).values())  # nothing sent yet
    run = start_resync(frame, school)
    assert run["planned"] == [f"{i}. {r}" for i, r in enumerate(PLAN, 1)]
    assert run["added"] == [f"{i}. {r}" for i, r in enumerate(PLAN, 1) if r != RESOURCE]
    assert f"school(s) {school}" in run["where"] and "demo" in run["where"]
    assert run["state"] == "success", run
    assert "Ed-Fi resync finished" in run["flash"]
    assert run["order"] == PLAN  # the progress lists the resources in the order they are sent

    status, dag_run = api(edfi_airflow, "GET", f"/api/v2/dags/{DAG}/dagRuns/{quote(run['run_id'], safe='')}",
                          user="admin")
    assert status == 200 and dag_run["triggering_user_name"] == "user" and dag_run["state"] == "success"
    assert dag_run["conf"]["schools"] == [str(school)] and dag_run["conf"]["resources"] == [RESOURCE]
    status, tis = api(edfi_airflow, "GET", f"/api/v2/dags/{DAG}/dagRuns/{quote(run['run_id'], safe='')}"
                      "/taskInstances?limit=100", user="admin")
    states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
    assert {t: s for t, s in states.items() if s == "success"}.keys() == {
        "start_request", "delete_documents", "finish_request", *(f"send_{r}" for r in PLAN)}, states
    assert all(s == "skipped" for t, s in states.items() if t.startswith("send_") and t[5:] not in PLAN), states

    batch = history_of(edfi_airflow, run["run_id"])
    assert batch["kind"] == "edfi_resync" and batch["status"] == "complete" and batch["requested_by"] == "user"
    kept = {r["object"]: r for r in batch["results"]}
    assert sorted(kept) == sorted(PLAN)
    held = at_api(live_edfi_api)
    for resource in PLAN:
        shown, r = run["results"][resource], kept[resource]
        assert shown == {"status": r["status"], **{k: r[k] for k in COUNTS}}, (resource, shown, r)
        assert shown["status"] == "green" and shown["errors"] == 0, (resource, shown)
        # a first send creates every document, and the API holds exactly those
        assert shown["processed"] == shown["inserted"] == len(held[resource]) >= 1, (resource, shown)
        assert shown["updated"] == shown["deleted"] == shown["unchanged"] == 0, (resource, shown)
    assert [d["schoolId"] for d in held["schools"]] == [school]
    assert {d["courseOfferingReference"]["schoolId"] for d in held["sections"]} == {school}

    # the tab's list of requests shows it too, newest first
    frame.wait_for_selector(f"#edfi-history .edfi-request[data-batch='{batch['id']}']")
    first = frame.get_attribute("#edfi-history .edfi-request", "data-batch")
    assert first == str(batch["id"])


def test_the_same_resync_again_sends_nothing(user_tab, school, edfi_airflow, live_edfi_api):
    """Nothing changed in Campus: every document is unchanged, none is posted or deleted, and the
    API's documents are the ones the first run created (same ids, same versions)."""
    before = at_api(live_edfi_api)
    run = start_resync(user_tab, school)
    assert run["state"] == "success", run
    assert run["order"] == PLAN
    for resource in PLAN:
        shown = run["results"][resource]
        assert shown["inserted"] == shown["updated"] == shown["deleted"] == shown["errors"] == 0, (resource, shown)
        assert shown["unchanged"] == shown["processed"] == len(before[resource]) >= 1, (resource, shown)
    after = at_api(live_edfi_api)
    versions = {r: sorted((d["id"], d["_etag"], d["_lastModifiedDate"]) for d in docs) for r, docs in before.items()}
    assert versions == {r: sorted((d["id"], d["_etag"], d["_lastModifiedDate"]) for d in docs)
                        for r, docs in after.items()}
    batch = history_of(edfi_airflow, run["run_id"])
    assert batch["status"] == "complete" and {r["object"]: r["unchanged"] for r in batch["results"]} == {
        r: run["results"][r]["unchanged"] for r in PLAN}


def test_viewer_sees_the_results_but_cannot_start(browser, edfi_airflow):
    """Read views (both requests listed); Write starts: the button is disabled, and the server
    refuses a viewer's start without creating a run."""
    page, frame = open_in_airflow(browser, edfi_airflow, "viewer")
    try:
        frame.click('.tabs button[data-tab="edfi"]')
        try:
            frame.wait_for_function("() => document.querySelectorAll('#edfi-history .edfi-request').length >= 2",
                                    timeout=120_000, polling=1000)
        except Exception as exc:  # say what the tab showed and what the server holds
            shown = frame.evaluate("() => [document.querySelector('#edfi-flash').textContent, "
                                   "document.querySelector('#edfi-history').innerHTML.slice(0, 500), "
                                   "document.querySelector('#tab-edfi').className]")
            raise AssertionError(f"the viewer's tab lists fewer than 2 requests: {shown}; the server: "
                                 f"{api(edfi_airflow, 'GET', '/campus-sync/api/edfi/history', user='viewer')}") from exc
        frame.wait_for_function("() => document.querySelector('#edfi-start').title === 'Write rights needed'")
        assert frame.is_disabled("#edfi-start")
        rows = frame.eval_on_selector_all("#edfi-history .edfi-request:first-child tbody tr",
                                          "rs => rs.map(r => r.dataset.resource)")
        assert rows == PLAN
    finally:
        page.context.close()
    _, runs = api(edfi_airflow, "GET", f"/api/v2/dags/{DAG}/dagRuns?limit=100", user="admin")
    status, body = api(edfi_airflow, "POST", "/campus-sync/api/edfi/resync", user="viewer", headers=CSRF,
                       body={"configuration": "demo", "schools": ["1"], "resources": [RESOURCE]})
    assert status == 403 and "Write rights" in body["detail"], (status, body)
    _, after = api(edfi_airflow, "GET", f"/api/v2/dags/{DAG}/dagRuns?limit=100", user="admin")
    assert after["total_entries"] == runs["total_entries"] == 2


def test_a_paused_edfi_dag_is_shown_and_its_queued_run_says_why(browser, edfi_airflow, school):
    """A paused edfi_resync would leave a started resync queued for ever: the tab says so before
    the user acts, the queued run's progress says why, and a user with edit rights unpauses it from
    the tab; then the run starts and ends. A viewer is told who can."""
    set_paused(edfi_airflow, DAG, True)
    try:
        status, dags = api(edfi_airflow, "GET", "/campus-sync/api/dags", user="viewer")
        assert status == 200 and dags["dags"][DAG]["is_paused"] is True and dags["dags"][DAG]["can_unpause"] is False
        assert "user" in dags["dags"][DAG]["who_can_unpause"]
        status, run = api(edfi_airflow, "POST", "/campus-sync/api/edfi/resync", user="user", headers=CSRF,
                          body={"configuration": "demo", "schools": [str(school)], "resources": ["schools"]})
        assert status == 200, run
        progress = f"/campus-sync/api/edfi/progress?run_id={quote(run['dag_run_id'], safe='')}"
        status, seen = api(edfi_airflow, "GET", progress, user="viewer")
        assert status == 200 and seen["state"] == "queued", seen
        assert seen["waiting"]["paused"] is True and seen["waiting"]["can_unpause"] is False
        assert any(f"{DAG} is paused" in r for r in seen["waiting"]["reasons"]), seen["waiting"]

        page, frame = open_in_airflow(browser, edfi_airflow, "user")
        try:
            frame.click('.tabs button[data-tab="edfi"]')
            notice = frame.wait_for_selector(f"#dags-edfi .dag-warning.paused[data-dag='{DAG}']")
            assert "Start Resync (Ed-Fi)" in notice.text_content()
            frame.click(f"#dags-edfi button.unpause[data-dag='{DAG}']")
            frame.wait_for_selector(f"#dags-edfi .dag-warning.paused[data-dag='{DAG}']", state="detached")
        finally:
            page.context.close()
        assert not is_paused(edfi_airflow, DAG)
        assert wait_run(edfi_airflow, DAG, run["dag_run_id"]) == "success"
    finally:
        set_paused(edfi_airflow, DAG, False)
