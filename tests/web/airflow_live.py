"""Start a real Airflow (`airflow standalone`: api-server, scheduler, dag-processor, triggerer)
with the package's DAGs and plugin, metadata on the embedded PostgreSQL, for the page's live
tests (used until/unless the project's shared `live_airflow` fixture is available).

Users (simple auth manager): viewer/viewer, user/user, admin/admin.
Run by hand:  .venv/bin/python tests/web/airflow_live.py start 18200   (stop: ... stop)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USERS = {"viewer": "viewer", "user": "user", "admin": "admin"}
ROLES = {"viewer": "viewer", "user": "user", "admin": "admin"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveAirflow:
    url: str
    home: Path
    proc: subprocess.Popen | None
    env: dict

    def token(self, user: str) -> str:
        req = urllib.request.Request(f"{self.url}/auth/token", method="POST",
                                     data=json.dumps({"username": user, "password": USERS[user]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def environment(home: Path, port: int, metadata_uri: str, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in ROLES.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_uri,
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # The first execution-API calls after a start are slow on a busy machine (default 5 s).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "PYTHONPATH": str(ROOT / "plugins"),
    })
    env.update(extra or {})
    return env


def start(home: Path, port: int, metadata_uri: str, extra_env: dict | None = None,
          timeout: float = 240) -> LiveAirflow:
    home.mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps(USERS))
    env = environment(home, port, metadata_uri, extra_env)
    venv_bin = Path(sys.executable).parent
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
    subprocess.run([str(venv_bin / "airflow"), "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(home / "standalone.log", "ab")
    proc = subprocess.Popen([str(venv_bin / "airflow"), "standalone"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    live = LiveAirflow(f"http://127.0.0.1:{port}", home, proc, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {proc.returncode}; see {home / 'standalone.log'}")
        try:
            tok = live.token("admin")
            req = urllib.request.Request(f"{live.url}/api/v2/dags?dag_id_pattern=campus", 
                                         headers={"Authorization": f"Bearer {tok}"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                if json.loads(resp.read())["total_entries"] >= 4:
                    return live
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(2)
    live.stop()
    raise RuntimeError(f"Airflow did not come up in {timeout}s; see {home / 'standalone.log'}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "plugins"))
    from campus_sync import db

    home = ROOT / ".campus_sync" / "airflow-live"
    if sys.argv[1] == "start":
        port = int(sys.argv[2]) if len(sys.argv) > 2 else 18200
        uri = db.embedded_dsn("airflow_page").replace("postgresql://", "postgresql+psycopg2://", 1)
        live = start(home, port, uri)
        (home / "standalone.pid").write_text(str(live.proc.pid))
        print(live.url, "pid", live.proc.pid)
    else:
        pid = int((home / "standalone.pid").read_text())
        os.killpg(pid, signal.SIGTERM)
        print("stopped", pid)
