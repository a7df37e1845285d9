"""A partial resync under the real scheduler: objects outside the plan are skipped by the
scheduler (no worker process, no try), the mapped task carries the district's label, and
`campus-sync bench airflow`'s collection reads the run (queued→end, SQL from the history, parse
time from the task log); the request closes only after its last planned object."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = [pytest.mark.live, pytest.mark.db]

DAG_ID = "campus_partial_resync"


def test_partial_resync_skips_unplanned_objects_in_the_scheduler(live_airflow, graph):
    from campus_sync.bench import airflow_tasks as bench_airflow

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


def _when(stamp: str | None) -> dt.datetime:
    """An API timestamp as a datetime (a task never started: the earliest)."""
    if not stamp:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_refused_non_leaf_object_fails_the_request_after_every_object(live_airflow, graph):
    """PersonIdentity with its ancestors for district 0102 (seeded here, removed at the end): every
    child of PersonIdentity is outside the plan, so the scheduler skips the group's leaves at once.
    The request still closes after the last planned object: a clean run completes, and a run whose
    PersonIdentity the mass-delete guard refuses (the district lost 60 % of its people) is a failed
    request and a failed run."""
    import psycopg
    from psycopg import sql

    from campus_sync import config
    from campus_sync.demo import data as demo
    from live_helpers import LIVE_STUDENTS

    cfg = config.load()
    state, src = live_airflow.databases["state"], live_airflow.databases["0102"]
    planned = ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity"]
    conf = {"objects": ["PersonIdentity"], "districts": ["0102"]}
    with psycopg.connect(src) as conn:
        assert conn.execute("SELECT to_regnamespace('campus')").fetchone()[0] is None, "0102 is not empty"
        demo.seed_district(conn, graph, cfg.district("0102"), 1, LIVE_STUDENTS, 7, cfg.end_year(), cfg.state)
    live_airflow.wait_dag(DAG_ID)
    live_airflow.unpause(DAG_ID)
    try:
        clean = run_and_read(live_airflow, state, conf)
        assert clean["run"]["state"] == "success", clean["tis"]
        assert clean["batch"][0] == "complete" and sorted(clean["results"]) == sorted(planned), clean
        assert_closed_after_every_object(clean, planned)

        with psycopg.connect(src) as conn:  # the district loses 60 % of its people
            people = conn.execute("SELECT count(*) FROM campus.personidentity").fetchone()[0]
            gone = max(people * 6 // 10, cfg.delete_guard_min_rows)
            assert cfg.delete_guard_min_rows <= gone < people and gone > cfg.max_delete_share * people, people
            conn.execute("DELETE FROM campus.personidentity WHERE personid IN (SELECT personid FROM"
                         " campus.personidentity ORDER BY personid LIMIT %s)", (gone,))
        refused = run_and_read(live_airflow, state, conf)
        assert refused["run"]["state"] == "failed", refused["tis"]
        assert refused["tis"][("district.PersonIdentity", 0)]["state"] == "failed"
        assert refused["tis"][("finish_request", -1)]["state"] == "failed"
        status, details = refused["batch"]
        assert status == "failed" and details["failed"] == ["0102:PersonIdentity"], details
        assert refused["results"]["PersonIdentity"][0] == "failed"
        assert "confirm_deletes" in refused["results"]["PersonIdentity"][2]
        assert_closed_after_every_object(refused, planned)
    finally:
        with psycopg.connect(state) as conn:  # leave 0102 empty at the state and the district again
            tables = conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'state'"
                                  " AND column_name = 'district_id' ORDER BY 1").fetchall()
            for (table,) in tables:
                conn.execute(sql.SQL("DELETE FROM state.{} WHERE district_id = '0102'").format(sql.Identifier(table)))
        with psycopg.connect(src) as conn:
            conn.execute("DROP SCHEMA IF EXISTS campus CASCADE")


def run_and_read(live_airflow, state: str, conf: dict) -> dict:
    """Trigger a partial resync, wait for its end; its run, task instances, batch and results."""
    import psycopg

    r = live_airflow.trigger(DAG_ID, conf)
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = live_airflow.wait_run(DAG_ID, run_id, timeout=900)
    with live_airflow.client() as c:
        tis = c.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}).json()
    with psycopg.connect(state) as conn:
        batch_id, status, completed, details = conn.execute(
            "SELECT id, status, completed_at, details FROM sync.batch WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id)).fetchone()
        results = {o: (s, f, m) for o, s, f, m in conn.execute(
            "SELECT object, status, finished_at, message FROM sync.batch_result WHERE batch_id = %s", (batch_id,))}
    return {"run": run, "tis": {(t["task_id"], t["map_index"]): t for t in tis["task_instances"]},
            "batch": (status, details), "completed": completed, "results": results}


def assert_closed_after_every_object(read: dict, planned: list[str]) -> None:
    """finish_request started after every object task ended, and the request was closed after
    every object's result row (none left gray)."""
    tis = read["tis"]
    objects = [t for (task_id, _), t in tis.items() if task_id.startswith("district.")]
    assert {k[0] for k, t in tis.items() if t["state"] not in ("skipped",)} == \
        {"start_request", "finish_request"} | {f"district.{n}" for n in planned}, tis
    finish = tis[("finish_request", -1)]
    last = max(_when(t["end_date"]) for t in objects)
    assert _when(finish["start_date"]) >= last, (finish["start_date"], last)
    assert all(s != "gray" and f is not None and f <= read["completed"] for s, f, _ in read["results"].values()), \
        (read["completed"], read["results"])
