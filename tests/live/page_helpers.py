"""Helpers of the Resync State Data page's live tests (tests/live/test_page_*.py)."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

# Simple auth manager users of the live Airflow (tests/live/conftest.py adds viewer and user).
USERS = "admin:admin,viewer:viewer,user:user"
DISTRICT = "0101"


@dataclass
class PageAirflow:
    """The live Airflow as the page's tests see it: URL, a token per user, the state database."""

    url: str
    passwords: dict
    state_dsn: str
    district: str = DISTRICT

    def token(self, user: str) -> str:
        req = urllib.request.Request(f"{self.url}/auth/token", method="POST",
                                     data=json.dumps({"username": user, "password": self.passwords[user]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())["access_token"]


def api(live: PageAirflow, method: str, path: str, *, user: str | None = None, token: str | None = None,
        body=None, headers: dict | None = None):
    """One HTTP call to the live Airflow; returns (status, decoded JSON or text)."""
    h = dict(headers or {})
    if user:
        token = live.token(user)
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(live.url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, content = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, content = exc.code, exc.read()
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content.decode(errors="replace")


def wait_run(live: PageAirflow, dag_id: str, run_id: str, timeout: float = 1200) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        status, run = api(live, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", user="admin")
        state = run.get("state") if status == 200 else None
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout}s (last state {state})")


def wait_quiet(live: PageAirflow, timeout: float = 900) -> None:
    """Wait until the live Airflow has no run in progress and no queued run of an unpaused DAG
    (a queued run starts later and writes a new request): what a test that looks at the whole
    history needs before it acts. Earlier tests unpause the scheduled DAGs, which then start runs
    of their own."""
    deadline = time.monotonic() + timeout
    busy: list = []
    while time.monotonic() < deadline:
        status, runs = api(live, "GET", "/api/v2/dags/~/dagRuns?state=queued&state=running&limit=100", user="admin")
        assert status == 200, runs
        busy = [(r["dag_id"], r["dag_run_id"], r["state"]) for r in runs["dag_runs"]
                if r["state"] == "running" or not is_paused(live, r["dag_id"])]
        if not busy:
            return
        time.sleep(3)
    raise AssertionError(f"runs still in progress after {timeout}s: {busy}")


CAMPUS_DAGS = ("campus_full_resync", "campus_partial_resync", "campus_selective_sync",
               "campus_verification_summary")


def set_paused(live: PageAirflow, dag_id: str, paused: bool) -> None:
    """Pause or unpause a DAG as the admin, through Airflow's REST API (what a new deployment
    starts with: every DAG paused)."""
    status, body = api(live, "PATCH", f"/api/v2/dags/{dag_id}?update_mask=is_paused", user="admin",
                       body={"is_paused": paused})
    assert status == 200 and body["is_paused"] is paused, (status, body)


def is_paused(live: PageAirflow, dag_id: str) -> bool:
    status, body = api(live, "GET", f"/api/v2/dags/{dag_id}", user="admin")
    assert status == 200, body
    return bool(body["is_paused"])


def district_dsn(live: PageAirflow) -> str:
    """The live district database of `live.district` (named beside the state's by tests/live/conftest.py)."""
    return live.state_dsn.replace("/live_campus_state", f"/live_campus_district_{live.district}")


def page_airflow_of(live_airflow) -> PageAirflow:
    """The live Airflow as the page's tests see it, without the demo's full resync that
    `page_airflow` runs first (for tests that need no Campus data in the state)."""
    return PageAirflow(url=live_airflow.base_url,
                       passwords=json.loads(live_airflow.deployment.password_file.read_text()),
                       state_dsn=live_airflow.databases["state"])


# ------------------------------------------------------------------ the browser
CHROMIUM = os.environ.get("CAMPUS_SYNC_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE_ROUTE = "/plugin/resync-state-data"  # the page inside Airflow's UI (the plugin's external view)


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield b
        finally:
            b.close()


def sign_in(browser, live: PageAirflow, user: str, next_path: str, *, height: int = 1000):
    """A new browser context signed in as `user` through Airflow's own login form, on the page
    the form sends it to (`next_path`)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": height}, accept_downloads=True)
    ctx.set_default_timeout(120_000)  # a busy 2-core machine: Airflow's UI bundle loads slowly
    page = ctx.new_page()
    page.goto(f"{live.url}/auth/login?next={next_path}", wait_until="domcontentloaded")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", live.passwords[user])
    page.click("button[type=submit]")
    return page


def open_in_airflow(browser, live: PageAirflow, user: str):
    """Sign in through Airflow's own login form and open the Resync State Data page inside
    Airflow's UI; (the browser page, the frame the plugin's page is shown in, ready)."""
    page = sign_in(browser, live, user, PAGE_ROUTE)
    page.wait_for_url(re.compile(".*" + re.escape(PAGE_ROUTE) + ".*"))
    # the UI shows the plugin's page in an iframe once its bundle has loaded
    frame = page.wait_for_selector("iframe[src*='campus-sync']", state="attached").content_frame()
    assert frame is not None
    frame.wait_for_selector("body[data-ready='1']")
    return page, frame
