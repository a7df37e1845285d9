"""Session fixture for the page's live tests: one real Airflow per test session, with the
package's DAGs and plugin, demo districts seeded and the weekly full resync run once (the demo).

The Airflow gets its own deployment configuration (one district, school year 2027) so its DAG
runs stay short; its tasks and api-server use this session's embedded PostgreSQL.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import sys

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from airflow_live import LiveAirflow, free_port, start  # noqa: E402
LIVE_DISTRICT = "0101"


def api(live: LiveAirflow, method: str, path: str, *, user: str | None = None, token: str | None = None,
        body=None, headers: dict | None = None, raw: bool = False):
    """HTTP call to the live Airflow; returns (status, decoded JSON or text)."""
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
    if raw:
        return status, content
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content.decode(errors="replace")


def wait_run(live: LiveAirflow, dag_id: str, run_id: str, timeout: float = 1200) -> str:
    from urllib.parse import quote

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        status, run = api(live, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", user="admin")
        state = run.get("state") if status == 200 else None
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout}s (last state {state})")


@pytest.fixture(scope="session")
def page_airflow(tmp_path_factory, server_dsn, graph):
    """A running Airflow with the plugin, demo data and one full resync done.

    Development shortcut: CAMPUS_SYNC_PAGE_AIRFLOW=<url>,<state dsn> uses an Airflow you started
    (tests/web/airflow_live.py start) after `make demo` instead of starting one.
    """
    import psycopg

    if os.environ.get("CAMPUS_SYNC_PAGE_AIRFLOW"):
        url, dsn = os.environ["CAMPUS_SYNC_PAGE_AIRFLOW"].split(",", 1)
        live = LiveAirflow(url, Path("."), None, {})
        live.state_dsn, live.district = dsn, LIVE_DISTRICT
        yield live
        return

    from campus_sync import config, db, demo, schema

    tmp = tmp_path_factory.mktemp("page-airflow")
    cfg_file = tmp / "campus_sync.yaml"
    cfg_file.write_text("state: KY\nfull_resync_schedule: '0 2 * * 0'\ncurrent_school_year: 2027\n"
                        "state_conn_id: campus_state\n"
                        f"districts:\n  - {{id: '{LIVE_DISTRICT}', name: Abbott Independent}}\n")
    cfg = config.parse(cfg_file)
    state_dsn = db.embedded_dsn("campus_state") if not os.environ.get("CAMPUS_SYNC_TEST_DSN") else None
    extra = {"CAMPUS_SYNC_CONFIG": str(cfg_file)}
    if os.environ.get("CAMPUS_SYNC_TEST_DSN"):
        pytest.skip("the live page tests use the embedded PostgreSQL")
    with psycopg.connect(state_dsn) as conn:
        schema.ensure_state_schema(conn, graph)
        conn.commit()
    for i, d in enumerate(cfg.districts):
        with psycopg.connect(db.embedded_dsn(d.conn_id)) as conn:
            demo.seed_district(conn, graph, d, i, 40, 7, cfg.end_year(), cfg.state)
    metadata = db.embedded_dsn("airflow_page_tests").replace("postgresql://", "postgresql+psycopg2://", 1)
    live = start(tmp / "airflow", free_port(), metadata, extra_env=extra)
    try:
        for dag_id in ("campus_full_resync", "campus_partial_resync", "campus_selective_sync",
                       "campus_verification_summary"):
            api(live, "PATCH", f"/api/v2/dags/{dag_id}", user="admin", body={"is_paused": False})
        status, run = api(live, "POST", "/api/v2/dags/campus_full_resync/dagRuns", user="admin",
                          body={"logical_date": None, "conf": {}})
        assert status == 200, run
        assert wait_run(live, "campus_full_resync", run["dag_run_id"]) == "success"
        live.state_dsn = state_dsn
        live.district = LIVE_DISTRICT
        yield live
    finally:
        live.stop()
