"""`make demo-stop` / `campus-sync demo stop` stops the embedded PostgreSQL of $CAMPUS_SYNC_HOME;
`make clean-demo` / `campus-sync demo clean` stops Airflow and the server, then removes the
demo's data. Real servers in a home of their own (never the session's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campus_sync.orchestration.local_airflow import _alive

pytestmark = pytest.mark.db

EXE = str(Path(sys.executable).with_name("campus-sync"))


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAMPUS_SYNC_HOME": str(home)}
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=300)


def _server_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def home(tmp_path):
    if os.environ.get("CAMPUS_SYNC_TEST_DSN"):
        pytest.skip("an external test server: no embedded one to stop")
    home = tmp_path / "demo_home"
    yield home
    pid_file = home / "pgdata" / "postmaster.pid"
    if pid_file.exists():  # a failed test: do not leave a server behind
        _cli(home, "demo", "stop", "--force")
    if pid_file.exists():
        try:
            os.kill(_server_pid(home), signal.SIGINT)  # PostgreSQL's fast shutdown
        except (ProcessLookupError, ValueError):
            pass


def test_demo_stop_stops_the_embedded_server(home):
    started = _cli(home, "dsn", "state")
    assert started.returncode == 0, started.stderr
    pid = _server_pid(home)
    assert _alive(pid)
    stop = _cli(home, "demo", "stop")
    assert stop.returncode == 0, stop.stderr
    assert "stopped the embedded PostgreSQL" in stop.stdout and str(home / "pgdata") in stop.stdout
    assert not _alive(pid) and not (home / "pgdata" / "postmaster.pid").exists()
    again = _cli(home, "demo", "stop")
    assert again.returncode == 0 and "not running" in again.stdout
    # the data stays: the next use starts the same server again
    assert _cli(home, "dsn", "state").returncode == 0 and _alive(_server_pid(home))
    assert _cli(home, "demo", "stop").returncode == 0


def test_demo_stop_refuses_while_the_local_airflow_runs_and_clean_stops_both(home):
    assert _cli(home, "dsn", "state").returncode == 0
    server = _server_pid(home)
    run = home / "airflow" / "run"
    run.mkdir(parents=True)
    scheduler = subprocess.Popen(["bash", "-c", "sleep 300 & wait", "airflow-fake-scheduler"], start_new_session=True)
    try:
        (run / "scheduler.pid").write_text(f"{scheduler.pid}\n")
        time.sleep(0.3)
        refused = _cli(home, "demo", "stop")
        assert refused.returncode == 1
        assert "make airflow-stop" in refused.stderr and "scheduler" in refused.stderr
        assert _alive(server) and _alive(scheduler.pid)

        (home / "keep-me.txt").write_text("not the demo's")
        clean = _cli(home, "demo", "clean")
        assert clean.returncode == 0, clean.stderr
        scheduler.wait(timeout=30)
        assert not _alive(server)
        assert sorted(p.name for p in home.iterdir()) == ["keep-me.txt"]
        assert "keep-me.txt" in clean.stdout  # named as left in place
        assert _cli(home, "demo", "clean").returncode == 0  # nothing left to do: harmless
    finally:
        try:
            os.killpg(scheduler.pid, signal.SIGKILL)  # the stand-in and its sleeper
        except ProcessLookupError:
            pass
        scheduler.wait()


def test_demo_stop_and_clean_stop_the_local_edfi_api_on_the_embedded_server(home):
    """The local Ed-Fi API keeps its documents on the embedded server, so stopping or removing that
    server stops the API too: never an API left answering on a stopped or deleted database."""
    started = _cli(home, "edfi", "api", "start", "--port", "0", "--json")
    assert started.returncode == 0, started.stderr
    api_pid = int((home / "edfi-api" / "api.pid").read_text())
    assert _alive(api_pid)
    stop = _cli(home, "demo", "stop")
    assert stop.returncode == 0, stop.stderr
    assert "stopped the local Ed-Fi API" in stop.stdout
    assert not _alive(api_pid)

    assert _cli(home, "edfi", "api", "start", "--port", "0", "--json").returncode == 0
    api_pid = int((home / "edfi-api" / "api.pid").read_text())
    clean = _cli(home, "demo", "clean")
    assert clean.returncode == 0, clean.stderr
    assert not _alive(api_pid)
    assert not home.exists() or "edfi-api" not in [p.name for p in home.iterdir()]
