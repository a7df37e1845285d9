"""The scale-out path on one machine: CeleryExecutor with Debian's redis-server on loopback.

A second Airflow (own AIRFLOW_HOME, metadata database, ports) started by the same code as
`make airflow AIRFLOW_EXECUTOR=CeleryExecutor AIRFLOW_CELERY_WORKERS=2`: redis-server, two Celery
workers (apache-airflow-providers-celery), scheduler, dag-processor and api-server. Both workers
answer the broker under their own hostnames; the weekly full resync runs through them to success
for district 0101; stopping the deployment ends both.
"""

from __future__ import annotations

import os
import shutil
import time

import psycopg
import pytest

from live_helpers import LiveAirflow, start_live

pytestmark = [pytest.mark.live, pytest.mark.db]

DAG_ID = "campus_full_resync"


@pytest.fixture(scope="module")
def celery_airflow(tmp_path_factory, live_deployment):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server missing in CI: .ci/run installs it (apt-get install -y redis-server)")
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    from campus_sync.orchestration.local_airflow import free_port

    home = tmp_path_factory.mktemp("airflow_celery")
    af, seconds = start_live(home, live_deployment, executor="CeleryExecutor", redis_port=free_port(),
                             triggerer=False, celery_concurrency=2, celery_workers=2)
    print(f"\ncelery_airflow: started in {seconds:.0f} s at {af.base_url}")
    try:
        yield LiveAirflow(base_url=af.base_url, username="admin", password=af.admin_password() or "",
                          home=home, deployment=af, databases=live_deployment["databases"],
                          seeded=live_deployment["seeded"])
    finally:
        af.stop()


def test_both_celery_workers_answer_the_broker(celery_airflow):
    import json
    import subprocess
    import sys

    af = celery_airflow.deployment
    assert set(af.components) == {"redis", "celery-worker", "celery-worker-2", "api-server", "scheduler",
                                  "dag-processor"}
    ping = ("import json; from airflow.providers.celery.executors.celery_executor import app; "
            "print(json.dumps(sorted(k for r in app.control.ping(timeout=5) for k in r)))")
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run([sys.executable, "-c", ping], env=af.environment(), capture_output=True, text=True,
                             timeout=120)
        names = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else []
        if len(names) == 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert sorted(n.split("@")[0] for n in names) == ["celery-worker", "celery-worker-2"], out.stderr[-2000:]
    for worker in ("celery-worker", "celery-worker-2"):  # each its own log, with its own banner
        assert f" {worker}@" in af.log_file(worker).read_text(), worker


def test_full_resync_runs_on_celery_workers(celery_airflow, graph):
    af = celery_airflow.deployment
    assert af.environment()["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    celery_airflow.wait_dag(DAG_ID)
    celery_airflow.unpause(DAG_ID)
    r = celery_airflow.trigger(DAG_ID, {"districts": ["0101"]})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = celery_airflow.wait_run(DAG_ID, run_id)
    states = celery_airflow.task_states(DAG_ID, run_id)
    assert run["state"] == "success", {k: v for k, v in states.items() if v != "success"}
    assert all(states[n] == "success" for n in graph.enabled("KY"))  # one task per object (per_object shape)

    # the tasks really went through Celery: the result backend (table celery_taskmeta in the
    # metadata database) holds one successful Celery task per task instance of the run
    with celery_airflow.client() as c:
        tis = c.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}).json()
    meta = af.metadata_uri().replace("postgresql+psycopg2://", "postgresql://", 1)
    ran = [ti for ti in tis["task_instances"] if ti["state"] == "success"]
    assert len(ran) > len(graph.enabled("KY"))
    # A worker stores a Celery result after the task's own process has reported success to
    # Airflow, so the last few results can land just after the run is marked done.
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(meta) as conn:
            done = conn.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'").fetchone()[0]
        if done >= len(ran) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done >= len(ran), f"{done} Celery results stored for {len(ran)} successful task instances"
    with psycopg.connect(celery_airflow.databases["state"]) as conn:
        status = conn.execute("SELECT status FROM sync.batch WHERE dag_id = %s AND run_id = %s",
                              (DAG_ID, run_id)).fetchone()
    assert status == ("complete",)


def test_stop_ends_both_workers(celery_airflow):
    af = celery_airflow.deployment
    pids = af.pids()
    assert pids["celery-worker"] and pids["celery-worker-2"]
    stopped = af.stop()
    assert {"celery-worker", "celery-worker-2", "redis"} <= set(stopped)
    assert af.leftovers() == {} and not list(af.run_dir.glob("*.pid"))
