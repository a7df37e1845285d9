"""Helpers of the live Airflow tests (importable: `from live_helpers import LiveAirflow, start_live`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

LIVE_STUDENTS = 12


@dataclass
class LiveAirflow:
    """What a live test needs: where Airflow answers, the admin login, and REST helpers."""

    base_url: str
    username: str
    password: str
    home: Path
    deployment: object  # campus_sync.orchestration.local_airflow.LocalAirflow
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


def start_live(home: Path, live_deployment: dict, **kwargs) -> tuple[object, float]:
    """Start a LocalAirflow on free loopback ports; returns it and the seconds it took."""
    from campus_sync.orchestration.local_airflow import AirflowStartError, LocalAirflow, free_port

    af = LocalAirflow(home=home, port=free_port(), host="127.0.0.1", log_ports=(free_port(), free_port()),
                      meta_db=f"live_meta_{home.name}".lower().replace("-", "_"),
                      extra_env={**live_deployment["env"],
                                 # the DAG files do not change during a session: parse them once, not
                                 # every 30 s (re-parsing costs seconds of CPU each time on this machine)
                                 "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600"},
                      **kwargs)
    t0 = time.monotonic()
    try:
        af.start(timeout=float(os.environ.get("CAMPUS_SYNC_LIVE_TIMEOUT", "420")))
    except AirflowStartError:
        af.stop()
        raise
    return af, time.monotonic() - t0
