"""edfi_resync end to end: real dag.test() runs against a real local Ed-Fi API (its own process,
over real HTTP) and real PostgreSQL. One school with Select Dependencies: the planned resources
succeed with their counts, the rest are skipped by the scheduler, a second run sends nothing;
a bad resource is refused at trigger time and a request without a school by the first task,
both writing nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
from resync_helpers import documents, point_connection, seed_edfi, start_fresh_api  # noqa: E402

from campus_sync.orchestration.runner import run_dag  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.airflow]
DAG_ID = "edfi_resync"
ALL = ["schools", "sessions", "courses", "staffs", "students", "courseOfferings",
       "staffEducationOrganizationAssignmentAssociations", "studentSchoolAssociations", "sections",
       "staffSectionAssociations", "studentSectionAssociations"]


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch, airflow_db):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    yield {**deployment, "api": api, "info": info}
    api.stop()


def batches(dsn: str) -> list[dict]:
    from campus_sync.tools import history

    with psycopg.connect(dsn) as conn:
        return history.batches(conn, limit=50)


def first_school(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT min(schoolid) FROM campus.school").fetchone()[0]


def test_dag_shape_and_form(edfi):
    from campus_sync.orchestration.runner import get_dag

    dag = get_dag(DAG_ID)
    assert {t.task_id for t in dag.tasks} == {"start_request", "delete_documents", "finish_request"} | {
        f"send_{r}" for r in ALL}
    leaves = [t.task_id for t in dag.tasks if not t.downstream_task_ids]
    assert leaves == ["finish_request"]
    assert set(dag.get_task("finish_request").upstream_task_ids) == {t.task_id for t in dag.tasks} - {"finish_request"}
    assert dag.get_task("send_sessions").task_id in dag.get_task("send_courseOfferings").upstream_task_ids
    assert "send_sections" in dag.get_task("send_studentSectionAssociations").upstream_task_ids
    params = {k: dag.params.get_param(k) for k in dag.params}
    assert params["configuration"].schema["enum"] == ["demo", "tn"]
    assert params["select_dependencies"].value is True
    assert "off-peak" in params["all_schools"].description
    school = first_school(edfi["districts"]["0101"])
    assert str(school) in params["schools"].schema["values_display"]  # shown by name
    assert params["schools"].schema["values_display"][str(school)] != str(school)
    offered = params["resources"].schema["items"]["enum"]
    assert sorted(offered) == sorted(ALL)
    assert offered.index("schools") < offered.index("sessions") < offered.index("courseOfferings") \
        < offered.index("sections") < offered.index("studentSectionAssociations")  # dependency order


def test_resync_runs_then_sends_nothing(edfi):
    state = edfi["state"]
    school = first_school(edfi["districts"]["0101"])
    conf = {"configuration": "demo", "schools": [str(school)], "resources": ["sections"]}
    out = run_dag(DAG_ID, conf)
    planned = {"schools", "sessions", "courses", "courseOfferings", "sections"}
    assert out.ok, out.task_states
    assert {r for r in ALL if out.task_states[f"send_{r}"] == "success"} == planned, out.task_states
    assert all(out.task_states[f"send_{r}"] == "skipped" for r in set(ALL) - planned)
    assert out.task_states["delete_documents"] == out.task_states["finish_request"] == "success"
    (batch,) = batches(state)
    assert batch["kind"] == "edfi_resync" and batch["status"] == "complete"
    assert batch["details"]["dependency_check"] == []  # checked against the API's list: they agree
    by = {r["object"]: r for r in batch["results"]}
    assert set(by) == planned
    for name, r in by.items():
        assert r["processed"] > 0 and r["inserted"] == r["processed"] - r["errors"], (name, r)
        assert r["inserted"] == len(documents(edfi["info"], name)), name
    assert by["schools"]["inserted"] == 1  # one school

    again = run_dag(DAG_ID, conf)
    assert again.ok, again.task_states
    second = batches(state)[0]
    assert second["status"] == "complete" and second["id"] != batch["id"]
    for r in second["results"]:
        assert r["inserted"] == r["updated"] == r["deleted"] == 0, r
        assert r["unchanged"] == by[r["object"]]["inserted"], r


def test_refusals_write_nothing(edfi):
    from airflow.sdk.exceptions import ParamValidationError

    state = edfi["state"]
    school = first_school(edfi["districts"]["0101"])
    with pytest.raises(ParamValidationError, match="resources"):
        run_dag(DAG_ID, {"configuration": "demo", "schools": [str(school)], "resources": ["bogusResource"]})
    with pytest.raises(ParamValidationError, match="configuration"):
        run_dag(DAG_ID, {"configuration": "nowhere", "all_schools": True})
    out = run_dag(DAG_ID, {"configuration": "demo", "resources": ["schools"]})  # no school, no All Schools
    assert out.state == "failed"
    assert out.task_states["start_request"] == "failed"
    assert out.task_states["finish_request"] == "failed"
    assert all(out.task_states[f"send_{r}"] in ("upstream_failed", "skipped") for r in ALL), out.task_states
    out = run_dag(DAG_ID, {"configuration": "demo", "all_schools": True, "run_cleanup": True})  # KY, not TN
    assert out.state == "failed" and out.task_states["start_request"] == "failed"
    assert batches(state) == []
    assert documents(edfi["info"], "schools") == []


def test_a_failed_resource_fails_the_run(edfi, monkeypatch):
    """sessions cannot be extracted (its Campus table is gone): its task fails, the resources
    depending on it are not run, the others are sent, and finish_request fails the run."""
    from campus_sync.orchestration import edfi_dags

    monkeypatch.setattr(edfi_dags, "DEFAULT_ARGS", {**edfi_dags.DEFAULT_ARGS, "retries": 0})  # fail at once
    with psycopg.connect(edfi["districts"]["0101"]) as conn:
        conn.execute("ALTER TABLE campus_edfi.term RENAME TO term_gone")
    out = run_dag(DAG_ID, {"configuration": "demo", "all_schools": True,
                           "resources": ["sections", "staffs"]})
    assert out.state == "failed"
    ts = out.task_states
    assert ts["send_sessions"] == "failed"
    assert ts["send_courseOfferings"] == ts["send_sections"] == "upstream_failed"
    assert ts["send_schools"] == ts["send_courses"] == ts["send_staffs"] == "success"
    assert ts["finish_request"] == "failed"
    leaves = {t for t in ts if not t.startswith("send_")} - {"start_request", "delete_documents"}
    assert leaves == {"finish_request"}
    (batch,) = batches(edfi["state"])
    by = {r["object"]: r["status"] for r in batch["results"]}
    assert batch["status"] == "failed"
    assert by["sessions"] == "failed" and by["sections"] == by["courseOfferings"] == "not_run"
    assert by["schools"] != "failed" and by["staffs"] != "failed"
    assert len(documents(edfi["info"], "staffs")) > 0
    from campus_sync.edfi import resync

    assert resync.read_only("demo") == []  # the failed request's combinations are free again
