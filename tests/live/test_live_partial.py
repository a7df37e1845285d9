"""A partial resync under the real scheduler: objects outside the plan are skipped by the
scheduler (no worker process, no try), the mapped task carries the district's label, and
`campus-sync bench airflow`'s collection reads the run (queued→end, SQL from the history, parse
time from the task log)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.live, pytest.mark.db]

DAG_ID = "campus_partial_resync"


def test_partial_resync_skips_unplanned_objects_in_the_scheduler(live_airflow, graph):
    from campus_sync import bench_airflow

    live_airflow.wait_dag(DAG_ID)
    live_airflow.unpause(DAG_ID)
    r = live_airflow.trigger(DAG_ID, {"objects": ["TestScore"], "check_dependencies": False, "districts": ["0101"]})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = live_airflow.wait_run(DAG_ID, run_id)
    with live_airflow.client() as c:
        tis = c.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}).json()
    tis = {(t["task_id"], t["map_index"]): t for t in tis["task_instances"]}
    assert run["state"] == "success", {k: t["state"] for k, t in tis.items()}

    ran = {k for k, t in tis.items() if t["state"] != "skipped"}
    assert ran == {("start_request", -1), ("district.TestScore", 0), ("finish_request", -1)}
    assert tis[("district.TestScore", 0)]["rendered_map_index"] == "0101 Abbott Independent"
    skipped = {k: t for k, t in tis.items() if t["state"] == "skipped"}
    assert {k[0] for k in skipped} == {f"district.{n}" for n in graph.enabled("KY")} - {"district.TestScore"}
    # skipped before expansion and never handed to a worker: one unexpanded instance, no try
    assert all(k[1] == -1 and t["try_number"] == 0 for k, t in skipped.items()), skipped

    # what the bench reports for this run: one object task, its SQL time and the parse time
    client = bench_airflow.Client(live_airflow.base_url, live_airflow.username, live_airflow.password)
    timings = bench_airflow.collect(client, live_airflow.databases["state"], DAG_ID, run_id)
    assert [t.task_id for t in timings] == ["district.TestScore", "finish_request", "start_request"]
    (score,) = [t for t in timings if t.task_id == "district.TestScore"]
    assert score.label == "0101 Abbott Independent" and score.sql is not None and score.sql > 0
    assert score.queued_to_end >= score.run >= score.sql
    # parse time comes from the task log as the API serves it; not every log was served here
    # (seen: start_request's parse None in this fixture), so only check the values found
    assert all(t.parse > 0 for t in timings if t.parse is not None), timings
    summary = bench_airflow.summary(timings)
    assert summary["object_tasks"] == 1 and summary["overhead_ratio"] is not None
    assert "overhead ratio" in bench_airflow.format_report(
        {"dag_id": DAG_ID, "run_id": run_id, "state": run["state"], **summary,
         "timings": [vars(t) | {"overhead": t.overhead} for t in timings]})
