"""Every request ends, and bad input is refused before any write: a killed `campus-sync dag run`
leaves an abandoned batch (not a gray one forever), unknown conf keys and the delete guards
through the DAGs, connections that resolve nowhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from campus_sync.orchestration import runner

pytestmark = [pytest.mark.airflow, pytest.mark.db]
CLI = [sys.executable, "-c", "import sys; from campus_sync.cli import main; sys.exit(main())"]


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "plugins"))
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_a_killed_run_is_shown_abandoned_and_can_be_cleared(airflow_db, deployment):
    state = deployment["state"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "plugins"))
    proc = subprocess.Popen([*CLI, "dag", "run", "campus_full_resync", "--conf", '{"districts": ["0101"]}'],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(1200):  # wait until it is syncing objects
            started = q(state, "SELECT count(*) FROM sync.batch_result r JOIN sync.batch b ON b.id = r.batch_id"
                               " WHERE b.status = 'running'")[0][0]
            if started >= 3:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert q(state, "SELECT status FROM sync.batch") == [("running",)]
    out = cli("history", "--json")
    assert out.returncode == 0, out.stderr
    (batch,) = json.loads(out.stdout)["batches"]
    assert batch["status"] == "abandoned"
    assert "ended without finishing the request" in batch["details"]["abandoned"]
    assert "gray" not in {r["status"] for r in batch["results"]}
    cleared = cli("history", "clear", "--yes")
    assert cleared.returncode == 0 and "deleted 1 requests" in cleared.stdout
    assert q(state, "SELECT count(*) FROM sync.batch") == [(0,)]


def test_a_live_run_is_not_reaped(airflow_db, deployment):
    """The owner session of a running process keeps its batch running."""
    from campus_sync.tools import history
    from campus_sync.tools import liveness

    with runner.owner_session(), psycopg.connect(deployment["state"]) as conn:
        batch = history.create_batch(conn, kind="partial", requested_by="t", school_year="current", end_year=2027,
                                     check_dependencies=True, districts=["0101"], objects=["District"],
                                     dag_id="d", run_id="r")
        assert liveness.reap(conn) == []
        assert q(deployment["state"], "SELECT status FROM sync.batch WHERE id = %s", (batch,)) == [("running",)]
    # an Airflow-owned batch whose run Airflow reports failed is abandoned; an unknown state is left
    with psycopg.connect(deployment["state"]) as conn:
        other = history.create_batch(conn, kind="partial", requested_by="t", school_year="current", end_year=2027,
                                     check_dependencies=True, districts=["0101"], objects=["District"],
                                     dag_id="d", run_id="r2")
        # a new request closes the dead one first: its process (session) ended
        assert q(deployment["state"], "SELECT status FROM sync.batch WHERE id = %s", (batch,)) == [("abandoned",)]
        assert liveness.reap(conn, lambda d, r: None) == []
        assert liveness.reap(conn, lambda d, r: "running") == []
        assert liveness.reap(conn, lambda d, r: "failed") == [other]


def test_unknown_conf_keys_are_refused_before_any_write(airflow_db, deployment):
    out = runner.run_dag("campus_partial_resync", {"objects": ["School"], "district": ["0101"]})
    assert out.state == "failed" and out.task_states["start_request"] == "failed"
    assert q(deployment["state"], "SELECT count(*) FROM sync.batch") == [(0,)]
    assert q(deployment["state"], "SELECT count(*) FROM state.school") == [(0,)]


def test_the_guard_names_the_param_and_the_param_overrides_it(airflow_db, deployment):
    assert runner.run_dag("campus_partial_resync", {"objects": ["VaccineShot"], "districts": ["0101"]}).ok
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("DELETE FROM campus.vaccineshot")
    out = runner.run_dag("campus_partial_resync", {"objects": ["VaccineShot"], "districts": ["0101"],
                                                   "check_dependencies": False})
    assert out.state == "failed"
    (message,) = q(deployment["state"], "SELECT message FROM sync.batch_result WHERE object = 'VaccineShot'"
                                        " AND status = 'failed'")[0]
    assert "confirm_deletes=true" in message
    assert q(deployment["state"], "SELECT count(*) > 0 FROM state.vaccineshot") == [(True,)]
    out = runner.run_dag("campus_partial_resync", {"objects": ["VaccineShot"], "districts": ["0101"],
                                                   "check_dependencies": False, "confirm_deletes": True})
    assert out.ok
    assert q(deployment["state"], "SELECT count(*) FROM state.vaccineshot WHERE district_id = '0101'") == [(0,)]
