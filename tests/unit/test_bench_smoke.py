"""`campus-sync bench` end to end at 2000 rows: the figures exist and the engine's counts are exact.

No timing asserts: this box's speed says nothing; the counts say the bench measured the right thing.
"""

from __future__ import annotations

import json

import pytest

KEYS = {"rows", "full_load_s", "unchanged_resync_s", "one_percent_changed_s", "child_full_load_s",
        "child_one_percent_changed_s", "copy_pipe_s", "child_copy_pipe_s", "insert_rows_s", "insert_rows_rows",
        "peak_rss_mb", "ratios", "targets_met"}
DISTRICT_KEYS = {"district_first_load_s", "district_unchanged_resync_s", "district_rows",
                 "district_first_load_rows_per_s", "district_unchanged_rows_per_s", "district_object_fixed_cost_ms",
                 "district_ratios", "district_targets_met", "district_objects"}


@pytest.mark.db
def test_bench_2000_rows(make_db, monkeypatch, request):
    from campus_sync import db

    # Fresh databases on the test server (embedded, or CAMPUS_SYNC_TEST_DSN), found the way
    from campus_sync.bench import engine_load as bench
    # production finds them: through AIRFLOW_CONN_* under the bench's connection ids.
    for conn_id in (bench.DISTRICT_CONN, bench.STATE_CONN):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", make_db(f"t_{conn_id}"))
    db.dsn.cache_clear()
    request.addfinalizer(db.dsn.cache_clear)  # do not leak these DSNs to later tests
    res = json.loads(json.dumps(bench.run(2000, repeats=2)))  # what --json prints
    assert KEYS <= res.keys()
    assert res["rows"] == 2000 and res["insert_rows_rows"] == 2000 and res["copy_pipe_rows"] == 2000
    assert res["full_load_counts"]["inserted"] == 2000
    unchanged = res["unchanged_resync_counts"]
    assert (unchanged["inserted"], unchanged["updated"], unchanged["deleted"]) == (0, 0, 0)
    changed = res["one_percent_changed_counts"]
    assert (changed["updated"], changed["inserted"], changed["deleted"]) == (20, 0, 0)
    assert all(v > 0 for k, v in res.items() if k.endswith("_s"))
    assert all(len(v) == 2 for v in res["samples"].values())
    # the unchanged resync compared digests and copied nothing; the 1 % change copied just the
    # changed rows (the key hashes that differ), not whole buckets
    assert unchanged["copied"] == 0 and 20 <= changed["copied"] <= 3 * 20
    assert res["targets_met"]["one_percent_changed_exact_and_copied_le_3x"]
    child_changed = res["child_one_percent_changed_counts"]
    assert (child_changed["updated"], child_changed["inserted"], child_changed["deleted"]) == (20, 0, 0)
    assert res["child_changed_rows"] == 20 and child_changed["copied"] <= 3 * 20
    child = res["child_full_load_counts"]  # a child's first load: every row has its parent
    assert (child["inserted"], child["errors"]) == (2000, 0) and res["child_copy_pipe_rows"] == 2000


@pytest.mark.db
def test_bench_district_small(make_db, monkeypatch, request):
    """`campus-sync bench district` on a 30-student demo district: every enabled object loads,
    the unchanged resync writes nothing, and the figures exist."""
    from campus_sync import db
    from campus_sync.bench import district as bench_district

    for conn_id in (bench_district.DISTRICT_CONN, bench_district.STATE_CONN):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", make_db(f"t_{conn_id}"))
    db.dsn.cache_clear()
    request.addfinalizer(db.dsn.cache_clear)
    res = json.loads(json.dumps(bench_district.run(30, repeats=1)))
    assert DISTRICT_KEYS <= res.keys()
    assert res["district_objects"] > 40 and res["district_rows"] > res["district_objects"]
    assert res["district_inserted"] > 0 and res["district_unchanged_written"] == 0
    assert res["district_first_load_s"] > 0 and res["district_unchanged_resync_s"] > 0
    assert res["district_object_fixed_cost_ms"] > 0


def test_bench_airflow_districts_needs_start():
    from campus_sync.cli import main

    with pytest.raises(SystemExit, match="--districts needs --start"):
        main(["bench", "airflow", "--districts", "3", "--students", "5"])


def test_bench_airflow_rows_added_and_object_tasks():
    from campus_sync.bench import airflow_tasks as bench_airflow

    added = bench_airflow.rows_added({"task_instance": 10, "xcom": 5, "log": 7}, {"task_instance": 66, "xcom": 5,
                                                                                   "log": 120, "dag_run": 1})
    assert added == {"total": 56 + 113 + 1, "top_tables": {"log": 113, "task_instance": 56, "dag_run": 1}}
    assert [bench_airflow.is_object_task(t) for t in ("district.School", "School", "start_request",
                                                       "finish_request")] == [True, True, False, False]
