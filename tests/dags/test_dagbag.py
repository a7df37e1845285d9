"""DagBag integrity (as in the Astro project template): every DAG imports, is tagged, retries."""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    import psycopg

    from airflow.dag_processing.dagbag import DagBag

    real_connect = psycopg.connect

    def no_db(*a, **k):  # DAG files must not touch a database at import
        raise AssertionError("a DAG file connected to a database at import time")

    psycopg.connect = no_db
    try:
        start = time.perf_counter()
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        bag.parse_seconds = time.perf_counter() - start  # reported, never asserted
    finally:
        psycopg.connect = real_connect
    return bag


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "campus_full_resync" in dagbag.dag_ids


def test_every_dag_is_tagged_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "campus-state-sync" in dag.tags, dag_id
        for t in dag.tasks:
            assert t.retries is not None and t.retries >= 0, (dag_id, t.task_id)
        sync_tasks = [t for t in dag.tasks if t.task_id.startswith("district.")]
        assert all(t.retries >= 1 for t in sync_tasks), dag_id


def test_full_resync_shape(dagbag, graph):
    """The weekly resync (full_resync_shape: per_object by default): one task per object, wired by
    the hierarchy, each in the state pool; the partial resync keeps one task per district and object."""
    dag = dagbag.get_dag("campus_full_resync")
    assert dag.schedule is not None or dag.timetable.summary
    assert dag.catchup is False and dag.max_active_runs == 1
    ids = {t.task_id for t in dag.tasks}
    assert ids == set(graph.enabled("KY")) | {"start_request", "finish_request"}
    assert "Title1KY" in ids and "AttendanceSDMinute" not in ids  # KY only
    # every object task: after start_request (which may skip it), its parents and the ancestors
    # whose keys it carries (so a skipped object in between cannot let it run early)
    assert dag.get_task("Roster").upstream_task_ids == {"start_request", "Enrollment", "StructureGradeLevel",
                                                        "PersonIdentity"}
    assert dag.get_task("Enrollment").upstream_task_ids == {
        "start_request", "PersonIdentity", "Calendar", "ScheduleStructure"}
    assert dag.get_task("TestScore").upstream_task_ids - {"start_request"} == {"Test", "PersonIdentity"}
    objects = [t for t in dag.tasks if t.task_id not in ("start_request", "finish_request")]
    assert all("start_request" in t.upstream_task_ids for t in objects)
    assert all(t.retries >= 1 and t.pool == "campus_state" for t in objects)
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    assert served.get_task("start_request").inherits_from_skipmixin
    assert served.get_task("start_request").retries >= 3 and served.get_task("finish_request").retries >= 3
    assert served.get_task("Roster").pool == "campus_state"


def test_partial_resync_shape_per_district(dagbag):
    """One district's partial resync keeps one task per object in a group mapped per district
    (labelled by district), so it costs no more than before."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.get_dag("campus_partial_resync")
    served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    roster = served.get_task("district.Roster")
    assert roster.map_index_template == "{{ district_label | default('') }}"
    assert roster.upstream_task_ids == {"start_request", "district.Enrollment", "district.StructureGradeLevel",
                                        "district.PersonIdentity"}


def test_districts_field_not_required(dagbag):
    """The Airflow 3 form marks a param required unless its type allows null; empty = all."""
    for dag_id in ("campus_full_resync", "campus_partial_resync", "campus_verification_summary"):
        schema = dagbag.get_dag(dag_id).params.get_param("districts").schema
        assert "null" in schema["type"] and "array" in schema["type"], (dag_id, schema)
        for value in ([], None, ["0101"]):
            dagbag.get_dag(dag_id).params.get_param("districts").resolve(value)


def test_districts_field_shows_labels_and_sends_ids(dagbag):
    """The form lists "0101 Abbott Independent", not bare ids; the values it sends (and the page
    and the CLI send) stay the ids, which the serialized DAG (what the API server validates a
    trigger with) accepts and start_request parses."""
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    from campus_sync import config
    from campus_sync.tools import requests

    cfg = config.load()
    labels = {"0101": "0101 Abbott Independent", "0102": "0102 Campus County Public Schools"}
    for dag_id in ("campus_full_resync", "campus_partial_resync", "campus_verification_summary"):
        served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.get_dag(dag_id)))
        schema = served.params.get_param("districts").schema
        assert schema["values_display"] == labels, (dag_id, schema)
        assert schema["examples"] == schema["items"]["enum"] == ["0101", "0102"], (dag_id, schema)
        base = {"objects": ["School"]} if dag_id == "campus_partial_resync" else {}
        sent = served.params.deep_merge({**base, "districts": ["0102", "0101"]}).validate()["districts"]
        assert requests.parse_districts(cfg, sent) == ("0101", "0102")
        with pytest.raises(ParamValidationError, match="'0999' is not one of"):
            served.params.deep_merge({**base, "districts": ["0999"]}).validate()
    single = dagbag.get_dag("campus_selective_sync").params.get_param("district").schema
    assert single["values_display"] == labels and single["enum"] == ["0101", "0102"]


def test_bench_floor_dag_has_the_full_resyncs_shape(dagbag, tmp_path):
    """`bench airflow --floor` measures Airflow's own per-task cost on a DAG of the same shape."""
    from airflow.dag_processing.dagbag import DagBag

    from campus_sync.bench import airflow_tasks as bench_airflow

    from campus_sync import config

    bench_airflow.floor_dags_folder(tmp_path / "dags", os.environ["AIRFLOW__CORE__DAGS_FOLDER"],
                                    config.load().full_resync_shape)
    bag = DagBag(dag_folder=str(tmp_path / "dags"))
    assert bag.import_errors == {}
    floor, real = bag.get_dag(bench_airflow.FLOOR_DAG_ID), dagbag.get_dag("campus_full_resync")
    objects = sorted(t.task_id for t in real.tasks if bench_airflow.is_object_task(t.task_id))
    assert len(objects) > 40
    assert sorted(t.task_id for t in floor.tasks if bench_airflow.is_object_task(t.task_id)) == objects
    for task_id in objects:
        assert floor.get_task(task_id).upstream_task_ids == real.get_task(task_id).upstream_task_ids, task_id
