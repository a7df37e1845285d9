"""`bench airflow` fails the runs an earlier, interrupted bench left queued or running in its
Airflow before it triggers its own: otherwise the scheduler resumes them next to the measured run
(or holds the measured run queued behind them, max_active_runs=1) and spoils its figures.

A real Airflow (LocalExecutor) whose only DAG is a one-task run that sleeps: one run is left
running (its task started) and one queued behind it, as an interrupted bench leaves them."""

from __future__ import annotations

import time

import pytest
from live_helpers import start_live

from campus_sync.bench import airflow_tasks as bench_airflow

pytestmark = [pytest.mark.live, pytest.mark.db, pytest.mark.airflow]
DAG_ID = "bench_leftover_probe"
PROBE = f'''from airflow.sdk import DAG, task

with DAG(dag_id="{DAG_ID}", schedule=None, catchup=False, max_active_runs=1, tags=["test"]):

    @task(retries=0)
    def sleep_long():
        import time
        time.sleep(900)

    sleep_long()
'''


@pytest.fixture(scope="module")
def probe_airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_leftovers")
    dags = home / "dags"
    dags.mkdir()
    (dags / "probe.py").write_text(PROBE)
    af, seconds = start_live(home, {"env": {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}}, triggerer=False)
    print(f"\nprobe_airflow: started in {seconds:.0f} s at {af.base_url}")
    try:
        yield af
    finally:
        af.stop()


def wait_for(check, what: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(1)
    return found


def run_state(client, run_id: str) -> str:
    return client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]


def task_state(client, run_id: str) -> str | None:
    (ti,) = client.task_instances(DAG_ID, run_id)
    return ti["state"]


def test_leftover_runs_are_failed_before_the_bench_triggers(probe_airflow):
    client = bench_airflow.Client(probe_airflow.base_url, "admin", probe_airflow.admin_password() or "")
    client.wait_dag(DAG_ID)
    left_running = client.trigger(DAG_ID, {})
    wait_for(lambda: task_state(client, left_running) == "running", "the first run's task never started")
    left_queued = client.trigger(DAG_ID, {})
    time.sleep(5)
    assert run_state(client, left_queued) == "queued"  # held behind the first: max_active_runs=1

    # in another's Airflow (--url) they are only reported
    seen = client.fail_leftover_runs([DAG_ID], fail=False)
    assert [(r["run_id"], r["state"], r["action"]) for r in seen] == [
        (left_running, "running", "left alone"), (left_queued, "queued", "left alone")]
    assert run_state(client, left_running) == "running"

    found = client.fail_leftover_runs([DAG_ID, "campus_bench_floor"])  # a DAG Airflow does not know: none
    assert [(r["dag_id"], r["run_id"], r["state"], r["action"]) for r in found] == [
        (DAG_ID, left_running, "running", "failed"), (DAG_ID, left_queued, "queued", "failed")]
    assert run_state(client, left_running) == "failed" and run_state(client, left_queued) == "failed"
    assert task_state(client, left_running) == "failed"
    assert client.fail_leftover_runs([DAG_ID]) == []

    # the bench's own run starts at once, and one it gives up on is not left running either
    mine = client.trigger(DAG_ID, {})
    wait_for(lambda: task_state(client, mine) == "running", "the bench's run was held back", timeout=120)
    with pytest.raises(TimeoutError):
        bench_airflow.wait_or_fail(client, DAG_ID, mine, timeout=1)
    assert run_state(client, mine) == "failed"
    assert client.fail_leftover_runs([DAG_ID]) == []
