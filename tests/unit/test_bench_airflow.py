"""`bench airflow`'s own parts on real PostgreSQL: the connection sampler counts this package's
backends by `application_name`, database by database, and the report says what it found."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from campus_sync.bench import airflow_tasks as bench_airflow

pytestmark = pytest.mark.db


def named(dsn: str, name: str | None) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(dsn, application_name=name) if name else dsn)


def test_the_sampler_counts_the_packages_connections_by_application_name(make_db, server_dsn):
    state, d1, d2 = make_db("t_sampler_state"), make_db("t_sampler_d1"), make_db("t_sampler_d2")
    opened = [
        named(state, "campus-sync:campus_full_resync/School"),
        named(state, "campus-sync:campus_full_resync/School"),
        named(state, "campus-sync:campus_full_resync/finish_request"),
        named(state, None),  # a DBA's psql: on the state, not ours
        named(state, "campus-syncer"),  # a prefix is not the name
        named(d1, "campus-sync:campus_full_resync/School"),
        named(d1, "campus-sync"),
        named(d2, "campus-sync:campus_full_resync/School"),
    ]
    sampler = bench_airflow.ConnectionSampler("t_sampler_state", ["t_sampler_d1", "t_sampler_d2"],
                                              server_dsn=server_dsn, interval=0.05)
    try:
        with sampler:
            deadline = time.monotonic() + 20
            while sampler.peak["samples"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        for conn in opened[:3]:  # fewer later: the peaks stay
            conn.close()
        with psycopg.connect(server_dsn) as conn:
            sampler.sample(conn)
    finally:
        for conn in opened:
            conn.close()
    peak = sampler.result()
    assert peak["samples"] >= 4
    assert (peak["state"], peak["state_all"], peak["district"], peak["package"]) == (3, 5, 2, 6)
    assert peak["state_by_application"] == {"campus-sync:campus_full_resync/School": 2,
                                            "campus-sync:campus_full_resync/finish_request": 1}


def test_the_report_names_leftover_runs_and_the_floor_only_shape():
    res = {"dag_id": "campus_bench_floor", "run_id": "manual__1", "state": "success", "tasks": 22,
           "object_tasks": 20, "wall_seconds": 30.0, "timings": [], "target_ratio": 3.0, "overhead_ratio": None,
           "median": {"queued_to_end": 1.5, "run": 0.7, "sql": None, "overhead": None, "parse": 0.3},
           "floor_only": True, "shape": "per_district", "celery_workers": 2, "celery_concurrency": 4,
           "leftover_runs": [{"dag_id": "campus_full_resync", "run_id": "manual__0", "state": "running",
                              "action": "failed"}],
           "peak_connections": {"state": 3, "state_all": 4, "district": 2, "package": 6, "samples": 9,
                                "state_by_application": {"campus-sync:campus_full_resync/School": 2}}}
    text = bench_airflow.format_report(res)
    assert "leftover running run campus_full_resync manual__0 found before triggering: failed" in text
    assert "floor only: shape per_district is not built by the product" in text
    assert "CeleryExecutor: 2 workers × 4 slots" in text
    assert "peak connections named campus-sync*: state 3 (every backend there: 4), busiest district 2" in text
    assert "campus-sync:campus_full_resync/School 2" in text


def test_floor_only_shapes_need_the_floor_and_districts(capsys):
    from campus_sync.cli import main

    with pytest.raises(SystemExit, match="--shape per_district is not a shape of the product"):
        main(["bench", "airflow", "--start", "--districts", "3", "--shape", "per_district"])
    with pytest.raises(SystemExit, match="--floor-only needs --districts N --start"):
        main(["bench", "airflow", "--start", "--floor-only"])
    with pytest.raises(SystemExit, match="--celery-workers and --celery-concurrency need --executor CeleryExecutor"):
        main(["bench", "airflow", "--start", "--celery-workers", "2"])
