"""`bench airflow --floor` DAGs of every shape compared for the weekly resync: (a) a task per object
per district, (b) a task per object, and the two the product does not build, measured as floors
only: (c) a task per district per hierarchy level, (d) a task per district. Each has the task
count and the dependencies its shape would have; (c) and (d) run under dag.test()."""

from __future__ import annotations

import pytest

from campus_sync import paths
from campus_sync.bench import airflow_tasks as bench_airflow
from campus_sync.orchestration import runner
from campus_sync.orchestration.dagbuild import upstream_objects

pytestmark = [pytest.mark.airflow]
BOOKKEEPING = {"start_request", "finish_request"}


def levels(graph) -> dict[str, int]:
    """Object → hierarchy level: one more than its deepest upstream object's (roots: 0)."""
    out: dict[str, int] = {}
    for name in graph.enabled("KY"):
        out[name] = 1 + max((out[p] for p in upstream_objects(graph, name) if p in out), default=-1)
    return out


def floor_dag(tmp_path, monkeypatch, shape: str):
    bench_airflow.floor_dags_folder(tmp_path / "dags", paths.PROJECT_ROOT / "dags", shape)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    from airflow import settings

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path / "dags"))  # dag.test()'s bundle path
    dag = runner.get_dag(bench_airflow.FLOOR_DAG_ID)
    assert bench_airflow.shape_tag(shape) in dag.tags
    return dag


def test_every_floor_shape_has_its_tasks_and_edges(tmp_path, monkeypatch, graph, airflow_db):
    enabled = list(graph.enabled("KY"))
    level = levels(graph)
    assert sorted(set(level.values())) == list(range(max(level.values()) + 1))

    a = floor_dag(tmp_path / "a", monkeypatch, "per_district_object")
    assert {t.task_id for t in a.tasks} - BOOKKEEPING == {f"district.{n}" for n in enabled}

    b = floor_dag(tmp_path / "b", monkeypatch, "per_object")
    assert {t.task_id for t in b.tasks} - BOOKKEEPING == set(enabled)
    assert all(b.get_task(n).pool == "campus_state" for n in enabled)

    c = floor_dag(tmp_path / "c", monkeypatch, "per_district_level")
    tasks = {t.task_id for t in c.tasks} - BOOKKEEPING
    assert tasks == {f"district.level_{i}" for i in set(level.values())}
    for i in sorted(set(level.values()))[1:]:  # each level of a district after the one before
        assert f"district.level_{i - 1}" in c.get_task(f"district.level_{i}").upstream_task_ids
        assert c.get_task(f"district.level_{i}").op_args[0] == [n for n in enabled if level[n] == i]
    assert c.get_task("finish_request").trigger_rule == "all_done"

    d = floor_dag(tmp_path / "d", monkeypatch, "per_district")
    assert {t.task_id for t in d.tasks} == BOOKKEEPING | {"sync_district"}
    assert d.get_task("sync_district").upstream_task_ids == {"start_request"}

    with pytest.raises(ValueError, match="unknown shape 'per_school'"):
        bench_airflow.floor_source("per_school")


@pytest.mark.parametrize("shape, per_district", [("per_district_level", None), ("per_district", 1)])
def test_floor_only_shapes_run_one_task_instance_per_district_and_unit(tmp_path, monkeypatch, graph, airflow_db,
                                                                         shape, per_district):
    """Two configured districts: (c) runs levels × 2 task instances, (d) 2, plus the request's two."""
    per_district = per_district or len(set(levels(graph).values()))
    floor_dag(tmp_path, monkeypatch, shape)
    outcome = runner.run_dag(bench_airflow.FLOOR_DAG_ID)
    assert outcome.state == "success", outcome.task_states
    assert len(outcome.task_states) == 2 * per_district + 2
    assert set(outcome.task_states.values()) == {"success"}
    assert sorted(set(outcome.labels.values())) == ["0101 Abbott Independent", "0102 Campus County Public Schools"]
