"""Helpers of the Resync State Data page's live tests (tests/live/test_page_*.py)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
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
