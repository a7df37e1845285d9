"""The weekly resync rendered one task per object (full_resync_shape: per_object), with dag.test():
one district's failure stays that district's, the history names each object's outcome per
district, and the run fails through finish_request."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from refusing_port import RefusingPort

from campus_sync.orchestration import runner, tasks

pytestmark = [pytest.mark.airflow, pytest.mark.db]


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def with_settings(tmp_path, monkeypatch, *lines: str) -> None:
    """Run with the tests' configuration plus `lines`."""
    path = tmp_path / "campus_sync.yaml"
    path.write_text(Path(os.environ["CAMPUS_SYNC_CONFIG"]).read_text() + "".join(f"{x}\n" for x in lines))
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(path))


def through(port: RefusingPort, deployment: dict, district: str, monkeypatch) -> None:
    """Connect to `district`'s database through `port` from now on."""
    from campus_sync import db

    monkeypatch.setenv(f"AIRFLOW_CONN_CAMPUS_DISTRICT_{district}",
                       port.dsn(conninfo_to_dict(deployment["districts"][district])["dbname"]))
    db.dsn.cache_clear()


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


def test_a_district_that_refuses_connections_fails_alone(airflow_db, deployment, graph, server_dsn, tmp_path,
                                                        monkeypatch):
    """District 0102's database refuses every connection: each root object is tried there as
    often as configured (inside its task), then fails there; every other object is not_run
    there, 0101 syncs completely, and the run fails."""
    with_settings(tmp_path, monkeypatch, "connection_retries: {retries: 1, delay_seconds: 0.1}")
    with RefusingPort(server_dsn, refuse=None) as port:
        through(port, deployment, "0102", monkeypatch)
        out = runner.run_dag("campus_full_resync", {})
        refused = port.refused
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
    district = res[("0102", "District")][1]
    assert district.startswith("district database: syncing District for district 0102: "), district
    assert district.endswith("(connection failed on each of 2 tries)"), district
    assert refused >= 2 * len(roots)  # each root tried twice (and the attendance refresh, if on)
    (batch,) = q(state, "SELECT status, details FROM sync.batch")
    assert batch[0] == "failed"
    assert sorted(batch[1]["failed"]) == sorted(f"0102:{n}" for n in roots)
    assert len(batch[1]["not_run"]) == len(enabled) - len(roots)


def test_a_district_that_refuses_its_first_connection_is_retried_inside_the_task(
        airflow_db, deployment, graph, server_dsn, tmp_path, monkeypatch):
    """District 0102's database refuses the first connection made to it, then accepts: the
    object that met the refusal is tried again inside its task (a fresh connection, a fresh
    transaction) and succeeds; every object of both districts is synced, the history says which
    one took a second try, and the run succeeds."""
    with_settings(tmp_path, monkeypatch, "connection_retries: {retries: 2, delay_seconds: 0.2}")
    with RefusingPort(server_dsn, refuse=1) as port:
        through(port, deployment, "0102", monkeypatch)
        out = runner.run_dag("campus_full_resync", {})
        assert (port.refused, port.forwarded > 0) == (1, True)
    assert out.state == "success", {k: v for k, v in out.task_states.items() if v != "success"}
    enabled = graph.enabled("KY")
    res = {(d, o): (s, m) for d, o, s, m in q(
        deployment["state"], "SELECT district_id, object, status, message FROM sync.batch_result")}
    assert all(res[(d, n)][0] in ("green", "yellow", "red") for d in ("0101", "0102") for n in enabled)
    retried = {k: m for k, (s, m) in res.items() if m and "try 2 of 3" in m}
    assert len(retried) == 1 and next(iter(retried))[0] == "0102", retried
    (message,) = retried.values()
    assert "succeeded on try 2 of 3 (connection failed before: district database: " in message, message
    assert q(deployment["state"], "SELECT status, details->'failed' FROM sync.batch") == [("complete", [])]


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
    ("connection_retries: -1", "'connection_retries' must be a whole number from 0 to 10 or a mapping"),
    ("connection_retries: 11", "'connection_retries' must be a whole number from 0 to 10 or a mapping"),
    ("connection_retries: yes", "'connection_retries' must be a whole number from 0 to 10 or a mapping"),
    ("connection_retries: {retries: 2, delay: 5}", "'connection_retries': unknown key 'delay'"),
    ("connection_retries: {delay_seconds: -1}", "'connection_retries.delay_seconds' must be a number of seconds"),
    ("connection_retries: {delay_seconds: 301}", "'connection_retries.delay_seconds' must be a number of seconds"),
    ("connection_retries: {retries: 1.5}", "'connection_retries.retries' must be a whole number from 0 to 10"),
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


@pytest.mark.parametrize("line, retries, delay, waits", [
    (None, 2, 5.0, [5.0, 10.0]),
    ("connection_retries: 0", 0, 5.0, []),
    ("connection_retries: 3", 3, 5.0, [5.0, 10.0, 20.0]),
    ("connection_retries: {retries: 4, delay_seconds: 100}", 4, 100.0, [100.0, 200.0, 300.0, 300.0]),
    ("connection_retries: {delay_seconds: 0.5}", 2, 0.5, [0.5, 1.0]),
])
def test_connection_retries_setting(tmp_path, line, retries, delay, waits):
    """A number is the retries; a mapping may also set the first wait, which doubles per retry
    (at most 300 s)."""
    from campus_sync import config
    from campus_sync.bench import airflow_tasks as bench_airflow

    path = tmp_path / "c.yaml"
    path.write_text(bench_airflow.scale_config_text(2, "per_object", 4, 2) + (f"{line}\n" if line else ""))
    got = config.parse(path).connection_retries
    assert (got.retries, got.delay_seconds) == (retries, delay)
    assert [got.wait(n) for n in range(1, got.retries + 1)] == waits
