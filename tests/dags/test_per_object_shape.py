"""The weekly resync rendered one task per object (full_resync_shape: per_object), with dag.test():
one district's failure stays that district's, the history names each object's outcome per
district, and the run fails through finish_request."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.orchestration import runner, tasks

pytestmark = [pytest.mark.airflow, pytest.mark.db]


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_blocked_districts_names_the_upstream_object():
    upstream = {
        "School": {"0101": {"status": "green"}, "0102": {"status": "failed", "message": "boom"}},
        "Calendar": {"0101": {"status": "not_run"}, "0102": {"status": "green"}},
        "Skipped": None,
    }
    assert tasks.blocked_districts(upstream) == {
        "0101": "not run: Calendar did not run for this district",
        "0102": "not run: School failed for this district",
    }
    assert tasks.blocked_districts({}) == {}


def test_per_object_dag_shape(airflow_db, graph):
    """One task per object plus start/finish; finish_request is downstream of every object and
    the run's only leaf; every object task runs in the state pool."""
    dag = runner.get_dag("campus_full_resync")
    enabled = set(graph.enabled("KY"))
    objects = {t.task_id for t in dag.tasks} - {"start_request", "finish_request"}
    assert objects == enabled
    assert [t.task_id for t in dag.leaves] == ["finish_request"]
    finish = dag.get_task("finish_request")
    assert finish.upstream_task_ids >= objects
    assert {dag.get_task(n).pool for n in objects} == {"campus_state"}
    assert dag.get_task("School").upstream_task_ids >= {"District", "start_request"}


def test_a_district_that_refuses_connections_fails_alone(airflow_db, deployment, graph, monkeypatch):
    """District 0102's database refuses connections: every root object fails there, every other
    object is not_run there, 0101 syncs completely, and the run fails."""
    import socket

    from campus_sync import db

    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_DISTRICT_0102", f"postgresql://nobody@127.0.0.1:{port}/campus")
    db.dsn.cache_clear()
    try:
        out = runner.run_dag("campus_full_resync", {})
    finally:
        db.dsn.cache_clear()
    enabled = graph.enabled("KY")
    assert out.state == "failed"
    assert out.task_states["finish_request"] == "failed"
    assert all(out.task_states[n] == "success" for n in enabled)  # 0101 synced each of them

    state = deployment["state"]
    res = {(d, o): (s, m) for d, o, s, m in q(
        state, "SELECT district_id, object, status, message FROM sync.batch_result")}
    assert len(res) == 2 * len(enabled)
    assert all(res[("0101", n)][0] in ("green", "yellow", "red") for n in enabled)
    roots = {n for n in enabled if not graph.spec(n).parents}
    assert roots and {n for n in enabled if res[("0102", n)][0] == "failed"} == roots
    assert all(res[("0102", n)][0] == "not_run" for n in enabled if n not in roots)
    assert res[("0102", "School")][1] == "not run: District failed for this district"
    assert "refused" in res[("0102", "District")][1].lower() or "connect" in res[("0102", "District")][1].lower()
    (batch,) = q(state, "SELECT status, details FROM sync.batch")
    assert batch[0] == "failed"
    assert sorted(batch[1]["failed"]) == sorted(f"0102:{n}" for n in roots)
    assert len(batch[1]["not_run"]) == len(enabled) - len(roots)


def test_an_object_that_fails_in_every_district_fails_its_task(airflow_db, deployment, graph):
    """Test is broken in both districts: its task fails (so Airflow retries it), TestScore ends
    upstream_failed and is recorded not_run for each district; the others succeed."""
    for dsn in deployment["districts"].values():
        with psycopg.connect(dsn) as conn:
            conn.execute("ALTER TABLE campus.test DROP COLUMN published")
    out = runner.run_dag("campus_full_resync", {})
    assert out.state == "failed"
    assert out.task_states["Test"] == "failed"
    assert out.task_states["TestScore"] == "upstream_failed"
    assert out.task_states["PersonIdentity"] == "success"
    res = dict(((d, o), s) for d, o, s in q(deployment["state"], "SELECT district_id, object, status FROM sync.batch_result"))
    assert res[("0101", "Test")] == res[("0102", "Test")] == "failed"
    assert res[("0101", "TestScore")] == res[("0102", "TestScore")] == "not_run"


@pytest.mark.parametrize("line, problem", [
    ("full_resync_shape: per_objekt", "'full_resync_shape' 'per_objekt' must be one of per_object, per_district_object"),
    ("districts_in_parallel: 0", "'districts_in_parallel' must be a whole number from 1 to 64"),
    ("districts_in_parallel: true", "'districts_in_parallel' must be a whole number from 1 to 64"),
    ("state_pool: 'campus state'", "'state_pool' 'campus state' must be an Airflow pool name"),
    ("state_pool_slots: 0", "'state_pool_slots' must be a whole number from 1 to 128"),
])
def test_shape_settings_refused_with_their_name(tmp_path, line, problem):
    from campus_sync import config
    from campus_sync.bench import airflow_tasks as bench_airflow

    path = tmp_path / "c.yaml"
    base = [x for x in bench_airflow.scale_config_text(2, "per_object", 4, 2).splitlines()
            if not x.startswith(line.split(":")[0] + ":")]
    path.write_text("\n".join(base + [line]) + "\n")
    with pytest.raises(config.ConfigError) as err:
        config.parse(path)
    assert problem in str(err.value)


def test_bench_scale_configuration_has_170_districts(tmp_path):
    from campus_sync import config
    from campus_sync.bench import airflow_tasks as bench_airflow

    path = tmp_path / "c.yaml"
    path.write_text(bench_airflow.scale_config_text(170, "per_district_object", 3, 5))
    cfg = config.parse(path)
    assert len(cfg.districts) == 170 and cfg.districts[0].id == "0001" and cfg.districts[-1].id == "0170"
    assert (cfg.full_resync_shape, cfg.districts_in_parallel, cfg.state_pool, cfg.state_pool_slots) == (
        "per_district_object", 3, "campus_state", 5)
