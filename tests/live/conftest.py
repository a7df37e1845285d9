"""`live_airflow`: one real Airflow per test session, started by the same code as `make airflow`.

The components (api-server, scheduler, dag-processor, triggerer; LocalExecutor) run in a temp
AIRFLOW_HOME on free loopback ports, with the metadata in database `live_airflow_meta` of the
session's embedded PostgreSQL and the session's test configuration. The state and the districts
are fresh databases on the same server, handed to every component as `AIRFLOW_CONN_*` like a
production deployment; district 0101 is seeded with a small demo (`seeded`), 0102 is empty.

Other test packages reuse it by importing the fixtures:
    from live.conftest import live_airflow, live_deployment  # noqa: F401
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LIVE_STUDENTS = 12


@dataclass
class LiveAirflow:
    """What a live test needs: where Airflow answers, the admin login, and REST helpers."""

    base_url: str
    username: str
    password: str
    home: Path
    deployment: object  # campus_sync.airflow_local.LocalAirflow
    databases: dict[str, str] = field(default_factory=dict)  # "state" / district id -> libpq URI
    seeded: dict[str, dict[str, int]] = field(default_factory=dict)  # district id -> object -> rows
    _token: tuple[float, str] | None = None

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A JWT from `/auth/token` (cached for the admin for 10 minutes)."""
        import httpx

        if username is None and self._token and time.monotonic() - self._token[0] < 600:
            return self._token[1]
        r = httpx.post(f"{self.base_url}/auth/token", timeout=60,
                       json={"username": username or self.username, "password": password or self.password})
        r.raise_for_status()
        token = r.json()["access_token"]
        if username is None:
            self._token = (time.monotonic(), token)
        return token

    def client(self, token: str | None = None):
        """An httpx client on the base URL with the admin's bearer token."""
        import httpx

        return httpx.Client(base_url=self.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {token or self.token()}"})

    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Until the dag-processor has parsed `dag_id` (the REST API knows it)."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                r = c.get(f"/api/v2/dags/{dag_id}")
                if r.status_code == 200:
                    return r.json()
                if time.monotonic() > deadline:
                    errors = c.get("/api/v2/importErrors").text
                    raise TimeoutError(f"{dag_id} not parsed after {timeout:.0f} s; import errors: {errors}")
                time.sleep(2)

    def unpause(self, dag_id: str) -> dict:
        with self.client() as c:
            r = c.patch(f"/api/v2/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": False})
            r.raise_for_status()
            return r.json()

    def trigger(self, dag_id: str, conf: dict):
        """POST a manual run (the raw response: tests assert refusals too)."""
        with self.client() as c:
            return c.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        """Until the run ends; returns the run (state success/failed). A slow answer is retried."""
        import httpx

        deadline = time.monotonic() + timeout
        run: dict = {}
        with self.client() as c:
            while True:
                try:
                    run = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
                except httpx.TimeoutException:
                    pass
                if run.get("state") in ("success", "failed"):
                    return run
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{dag_id} {run_id} still {run.get('state')} after {timeout:.0f} s")
                time.sleep(2)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """"task_id[map_index]" -> state for every task instance of the run."""
        with self.client() as c:
            r = c.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
            r.raise_for_status()
        return {ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
                for ti in r.json()["task_instances"]}


def _fresh_db(server_dsn: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def live_deployment(server_dsn, graph) -> dict:
    """Fresh state + districts for the live Airflow (prefix `live_`); 0101 seeded small."""
    import psycopg

    from campus_sync import config, demo, schema

    cfg = config.load()
    out: dict = {"databases": {}, "seeded": {}, "env": {}}
    out["databases"]["state"] = _fresh_db(server_dsn, "live_campus_state")
    with psycopg.connect(out["databases"]["state"]) as conn:
        schema.ensure_state_schema(conn, graph)
    out["env"][f"AIRFLOW_CONN_{cfg.state_conn_id.upper()}"] = out["databases"]["state"]
    for i, d in enumerate(cfg.districts):
        dsn = _fresh_db(server_dsn, f"live_campus_district_{d.id}")
        out["databases"][d.id] = dsn
        out["env"][f"AIRFLOW_CONN_{d.conn_id.upper()}"] = dsn
        if i == 0:
            with psycopg.connect(dsn) as conn:
                out["seeded"][d.id] = demo.seed_district(conn, graph, d, i, LIVE_STUDENTS, 7, cfg.end_year(), cfg.state)
    return out


def start_live(home: Path, live_deployment: dict, **kwargs) -> tuple[object, float]:
    """Start a LocalAirflow on free loopback ports; returns it and the seconds it took."""
    from campus_sync.airflow_local import AirflowStartError, LocalAirflow, free_port

    af = LocalAirflow(home=home, port=free_port(), host="127.0.0.1", log_ports=(free_port(), free_port()),
                      meta_db=f"live_meta_{home.name}".lower().replace("-", "_"),
                      extra_env=dict(live_deployment["env"]), **kwargs)
    t0 = time.monotonic()
    try:
        af.start(timeout=float(os.environ.get("CAMPUS_SYNC_LIVE_TIMEOUT", "420")))
    except AirflowStartError:
        af.stop()
        raise
    return af, time.monotonic() - t0


@pytest.fixture(scope="session")
def live_airflow(tmp_path_factory, live_deployment) -> Iterator[LiveAirflow]:
    """A running Airflow (LocalExecutor) for the session; stopped (whole process groups) at the end."""
    home = tmp_path_factory.mktemp("airflow_local")
    af, seconds = start_live(home, live_deployment)
    print(f"\nlive_airflow: started in {seconds:.0f} s at {af.base_url}")
    try:
        yield LiveAirflow(base_url=af.base_url, username="admin", password=af.admin_password() or "",
                          home=home, deployment=af, databases=live_deployment["databases"],
                          seeded=live_deployment["seeded"])
    finally:
        af.stop()
