"""campus_partial_resync end to end: real dag.test() runs over real PostgreSQL (tests/conftest.py).

A dag.test() task instance costs ~0.35 s and every one of the DAG's 54 object tasks runs (planned
ones sync, the rest skip), so the runs here use one district and are kept few: one test runs a
sequence of requests over the same state database (state request → previous year → without
dependencies → a refused request), asserting after each which objects ran, the state rows, the
history rows and the alerts. Param-level refusals and the first task's checks are tested
without a full run. Test configuration: state KY, current year 2026-27 (end year 2027); the demo
data holds 2025-26 and 2026-27 rows.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from campus_sync.tools import alerts
from campus_sync.tools import history
from campus_sync.tools import requests
from campus_sync.orchestration import tasks
from campus_sync.orchestration.runner import run_dag

pytestmark = [pytest.mark.db]
DAG_ID = "campus_partial_resync"
GROUP = "district"


# ----------------------------------------------------------------- helpers
def q(dsn: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def one(dsn: str, query: str, params=()):
    (row,) = q(dsn, query, params)
    return row[0] if len(row) == 1 else row


def state_snapshot(dsn: str) -> dict[str, tuple]:
    """Every state table (objects, history, alerts): row count and newest write."""
    out = {}
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('state', 'sync') ORDER BY 1, 2").fetchall()
        for schema, name in tables:
            col = {"state": "max(synced_at)", "sync": "NULL"}[schema]
            out[f"{schema}.{name}"] = conn.execute(f'SELECT count(*), {col} FROM "{schema}"."{name}"').fetchone()
    return out


def object_states(outcome, graph, district_index: int = 0) -> dict[str, str]:
    """Each object task's state in one district; an object outside the plan is skipped by the
    scheduler before it is expanded per district, so it has one task instance (no map index)."""
    ts = outcome.task_states
    return {n: ts.get(f"{GROUP}.{n}[{district_index}]") or ts.get(f"{GROUP}.{n}") for n in graph.enabled("KY")}


def assert_ran_exactly(outcome, graph, planned) -> None:
    """Planned objects succeeded, every other object task skipped by the scheduler (one
    unexpanded task instance each, no worker), only district 0101 mapped."""
    states = object_states(outcome, graph)
    assert {n for n, s in states.items() if s == "success"} == set(planned), states
    assert {n for n, s in states.items() if s != "success"} == set(graph.enabled("KY")) - set(planned)
    assert all(s == "skipped" for n, s in states.items() if n not in planned), states
    unplanned = set(graph.enabled("KY")) - set(planned)
    assert {n for n in unplanned if f"{GROUP}.{n}" in outcome.task_states} == unplanned, "not skipped before expansion"
    assert not any(k.endswith("[1]") for k in outcome.task_states), "only one district was requested"
    assert outcome.task_states["start_request"] == "success"
    assert outcome.task_states["finish_request"] == "success"


def latest_batch(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        (batch,) = history.batches(conn, limit=1)
    batch["by_object"] = {r["object"]: r for r in batch["results"]}
    return batch


def state_count(dsn: str, obj: str, district: str = "0101", end_year: int | None = None) -> int:
    where = " AND endyear = %s" if end_year is not None else ""
    return one(dsn, f"SELECT count(*) FROM state.{obj.lower()} WHERE district_id = %s{where}",
               (district, end_year) if end_year is not None else (district,))


def district_count(dsn: str, obj: str, end_year: int | None = None) -> int:
    where = " WHERE endyear = %s" if end_year is not None else ""
    return one(dsn, f"SELECT count(*) FROM campus.{obj.lower()}{where}", (end_year,) if end_year else ())


def list_alerts(dsn: str, district: str | None = None) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        return alerts.list_alerts(conn, district)


def cli_json(capsys, *args: str) -> dict:
    from campus_sync.cli import main

    capsys.readouterr()
    assert main(["alerts", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------- the DAG itself
@pytest.mark.airflow
def test_dag_form_and_shape(airflow_db, graph):
    from campus_sync.orchestration.runner import get_dag

    dag = get_dag(DAG_ID)
    assert dag.schedule is None and "Airflow" in (dag.doc_md or "")
    enabled = sorted(graph.enabled("KY"))
    params = {k: dag.params.get_param(k) for k in dag.params}
    assert set(params) == {"objects", "check_dependencies", "districts", "school_year", "requested_by",
                           "confirm_deletes"}
    assert params["confirm_deletes"].value is False
    objects = params["objects"].schema
    assert objects["type"] == "array" and objects["minItems"] == 1
    assert objects["items"]["enum"] == enabled and objects["examples"] == enabled  # UI multi-select
    assert params["check_dependencies"].value is True and params["check_dependencies"].schema["type"] == "boolean"
    assert params["districts"].value == [] and params["districts"].schema["items"]["enum"] == ["0101", "0102"]
    assert (params["school_year"].value, params["school_year"].schema["enum"]) == ("current", ["current", "previous", "next"])
    assert (params["requested_by"].value, params["requested_by"].schema["enum"]) == ("district", ["district", "state"])
    tasks_ = {t.task_id for t in dag.tasks}
    assert tasks_ == {"start_request", "finish_request"} | {f"{GROUP}.{n}" for n in graph.enabled("KY")}
    # parent → child inside the district group
    assert f"{GROUP}.Enrollment" in dag.get_task(f"{GROUP}.PersonIdentity").downstream_task_ids


# ----------------------------------------------------------------- refused at trigger time
PARAM_REFUSALS = [
    ({"objects": ["Bogus"]}, "param objects", "'Bogus' is not one of"),
    ({"objects": ["AttDayAggregation"]}, "param objects", "'AttDayAggregation' is not one of"),  # not KY
    ({"objects": ["testscore"]}, "param objects", "'testscore' is not one of"),
    ({"objects": "TestScore"}, "param objects", "'TestScore' is not of type 'array'"),
    ({"objects": []}, "param objects", "[] should be non-empty"),
    ({}, "param objects", "No value passed"),
    ({"objects": ["TestScore"], "districts": ["0999"]}, "param districts", "'0999' is not one of"),
    ({"objects": ["TestScore"], "districts": "0101"}, "param districts", "'0101' is not of type 'array'"),
    ({"objects": ["TestScore"], "school_year": "last"}, "param school_year", "'last' is not one of"),
    ({"objects": ["TestScore"], "check_dependencies": "yes"}, "param check_dependencies",
     "'yes' is not of type 'boolean'"),
    ({"objects": ["TestScore"], "requested_by": "county"}, "param requested_by", "'county' is not one of"),
]


@pytest.mark.airflow
def test_param_schema_refuses_bad_input(deployment, airflow_db):
    """Every case against the serialized DAG's params (what the API server and dag.test validate
    a trigger's conf with); a few through run_dag itself, which refuses before any task runs."""
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    from campus_sync.orchestration.runner import get_dag

    state = deployment["state"]
    before = state_snapshot(state)
    served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(get_dag(DAG_ID)))
    good = {"objects": ["TestScore", "Roster"], "check_dependencies": False, "districts": ["0102"],
            "school_year": "previous", "requested_by": "state", "confirm_deletes": False}
    assert served.params.deep_merge(good).validate() == good
    assert served.params.deep_merge({"objects": ["TestScore"]}).validate() == {
        "objects": ["TestScore"], "check_dependencies": True, "districts": [], "school_year": "current",
        "requested_by": "district", "confirm_deletes": False}
    for conf, param, message in PARAM_REFUSALS:
        with pytest.raises(ParamValidationError) as err:
            served.params.deep_merge(conf).validate()
        assert f"Invalid input for {param}: " in str(err.value) and message in str(err.value), (conf, str(err.value))
    for conf, param, message in [PARAM_REFUSALS[i] for i in (0, 4, 6, 9)]:
        with pytest.raises(ParamValidationError) as err:
            run_dag(DAG_ID, conf)
        assert param in str(err.value) and message in str(err.value), (conf, str(err.value))
    assert state_snapshot(state) == before
    assert before["sync.batch"][0] == 0 and before["sync.process_alert"][0] == 0


# ----------------------------------------------------------------- refused by the first task
def test_first_task_refuses_before_any_write(deployment, monkeypatch):
    """requests.build runs before the batch (and the alerts) are written; a failed batch insert
    takes the state request's alerts with it (one transaction)."""
    state = deployment["state"]
    before = state_snapshot(state)
    kw = {"kind": "state_request", "user": "tester", "dag_id": DAG_ID, "run_id": "manual__refused"}
    refused = [
        ({"objects": ["TestScore"], "school_year": "previous", "requested_by": "state"},
         "object 'TestScore' is not offered for the previous school year: it is not tied to a school year"),
        ({"objects": ["Behavior"], "school_year": "next", "requested_by": "state"},
         "object 'Behavior' is not offered for the next school year"),
        ({"objects": ["Bogus"], "requested_by": "state"}, "unknown object 'Bogus'"),
        ({"objects": [], "requested_by": "state"}, "no objects selected"),
        ({"objects": ["TestScore"], "districts": ["0999"], "requested_by": "state"}, "unknown district '0999'"),
    ]
    for params, message in refused:
        with pytest.raises(requests.RequestError, match=message):
            tasks.start_request(params, **kw)
    assert state_snapshot(state) == before

    def failing_create_batch(conn, **kwargs):
        # the alerts (one per configured district) are pending in this transaction
        assert conn.execute("SELECT count(*) FROM sync.process_alert").fetchone()[0] == 2
        raise psycopg.OperationalError("connection lost")

    monkeypatch.setattr(history, "create_batch", failing_create_batch)
    with pytest.raises(psycopg.OperationalError):
        tasks.start_request({"objects": ["Enrollment"], "requested_by": "state"}, **kw)
    assert state_snapshot(state) == before  # no alert without its batch


# ----------------------------------------------------------------- real runs
@pytest.mark.airflow
def test_partial_resync_runs(deployment, airflow_db, graph, capsys):
    state = deployment["state"]
    src = deployment["districts"]["0101"]

    # 1. a state-initiated request, check dependencies on (default), current year (default)
    out = run_dag(DAG_ID, {"objects": ["Enrollment"], "districts": ["0101"], "requested_by": "state"})
    assert out.ok, out.task_states
    plan1 = ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment"]
    assert_ran_exactly(out, graph, plan1)
    # mapped instances are labelled with the district (map_index_template), not 0, 1, 2
    assert {out.labels.get(f"{GROUP}.{n}[0]") for n in plan1} == {"0101 Abbott Independent"}, out.labels
    b1 = latest_batch(state)
    assert (b1["kind"], b1["status"], b1["requested_by"], b1["school_year"], b1["end_year"]) == \
        ("state_request", "complete", "dag_test", "current", 2027)
    assert (b1["check_dependencies"], b1["districts"], b1["objects"]) == (True, ["0101"], plan1)
    assert b1["details"]["requested"] == ["Enrollment"] and b1["run_id"] == out.run_id
    assert set(b1["by_object"]) == set(plan1) and {r["district"] for r in b1["results"]} == {"0101"}
    for name in plan1:
        r = b1["by_object"][name]
        assert r["status"] in ("green", "yellow", "red") and r["processed"] > 0, r
        assert state_count(state, name) == r["processed"] - r["errors"] == r["inserted"] > 0, name
    # year-scoped objects: the 2026-27 rows only; the district holds both years
    for name in ("Calendar", "ScheduleStructure", "Enrollment"):
        assert b1["by_object"][name]["processed"] == district_count(src, name, 2027) < district_count(src, name)
        assert state_count(state, name, end_year=2026) == 0
    # nothing outside the plan, nothing for district 0102
    snap1 = state_snapshot(state)
    assert {t for t, (n, _) in snap1.items() if t.startswith("state.") and n} == {f"state.{o.lower()}" for o in plan1}
    assert all(state_count(state, o, "0102") == 0 for o in plan1)
    # one alert, for the district involved, written with the batch, naming no object
    (alert,) = list_alerts(state)
    assert (alert["district"], alert["category"], alert["name"]) == \
        ("0101", "Vertical Interoperability", "State Resync Requested")
    assert alert["requested_at"] == b1["requested_at"]  # same transaction: same now()
    assert "2026-27" in alert["message"]
    assert not [o for o in graph.names if o in alert["message"]], alert["message"]
    doc = cli_json(capsys)
    assert doc == {"alerts": [{"id": alert["id"], "district": "0101", "category": "Vertical Interoperability",
                               "name": "State Resync Requested", "requested_at": alert["requested_at"].isoformat(),
                               "message": alert["message"]}]}
    assert cli_json(capsys, "--district", "0101")["alerts"] == doc["alerts"]
    assert cli_json(capsys, "--district", "0102") == {"alerts": []}
    from campus_sync.cli import main

    assert main(["alerts", "--district", "0999"]) == 1
    assert "unknown district '0999'" in capsys.readouterr().err
    assert main(["alerts"]) == 0 and "State Resync Requested" in capsys.readouterr().out

    # 2. previous school year, a district request: only the year's objects, the current year untouched
    out = run_dag(DAG_ID, {"objects": ["Roster"], "districts": ["0101"], "school_year": "previous"})
    assert out.ok, out.task_states
    plan2 = ["Calendar", "ScheduleStructure", "Enrollment", "StructureGradeLevel", "Roster"]
    assert_ran_exactly(out, graph, plan2)
    b2 = latest_batch(state)
    assert (b2["kind"], b2["status"], b2["school_year"], b2["end_year"], b2["objects"]) == \
        ("partial", "complete", "previous", 2026, plan2)
    assert set(b2["by_object"]) == set(plan2)
    for name in plan2:
        r = b2["by_object"][name]
        assert r["processed"] == district_count(src, name, 2026) > 0, name
        assert state_count(state, name, end_year=2026) == r["processed"] - r["errors"] > 0, (name, r["error_reasons"])
        assert state_count(state, name, end_year=2027) == (snap1[f"state.{name.lower()}"][0] if name in plan1 else 0)
    for name in ("District", "School", "PersonIdentity"):  # not tied to a year: not re-run
        assert state_snapshot(state)[f"state.{name.lower()}"] == snap1[f"state.{name.lower()}"]
    assert len(list_alerts(state)) == 1  # a district request raises no alert

    # 3. without dependencies: only TestScore runs; its rows whose Test is not at the state are
    #    counted as errors under their own reason, and the run does not fail
    snap2 = state_snapshot(state)
    out = run_dag(DAG_ID, {"objects": ["TestScore"], "districts": ["0101"], "check_dependencies": False})
    assert out.ok, out.task_states
    assert_ran_exactly(out, graph, ["TestScore"])
    b3 = latest_batch(state)
    assert (b3["kind"], b3["status"], b3["check_dependencies"], b3["objects"]) == \
        ("partial", "complete", False, ["TestScore"])
    r = b3["by_object"]["TestScore"]
    assert r["processed"] == district_count(src, "TestScore") > 0
    assert r["errors"] == r["processed"] and r["inserted"] == 0 and r["status"] == "red"
    missing = r["error_reasons"].get("parent_missing:Test", 0)
    assert missing > 0 and sum(r["error_reasons"].values()) == r["errors"], r["error_reasons"]
    assert not any(k.startswith("parent_missing:PersonIdentity") for k in r["error_reasons"])  # persons are there
    assert state_count(state, "TestScore") == 0 and state_count(state, "Test") == 0
    snap3 = state_snapshot(state)
    assert {k: v for k, v in snap3.items() if k.startswith("state.")} == \
        {k: v for k, v in snap2.items() if k.startswith("state.")}

    # 4. refused by the first task (an object not offered for the year), as a state request:
    #    the run fails, and nothing is written: no batch, no alert, no state row
    capsys.readouterr()
    out = run_dag(DAG_ID, {"objects": ["Behavior"], "districts": ["0101"], "school_year": "next",
                           "requested_by": "state"})
    assert out.state == "failed", out.task_states
    assert out.task_states["start_request"] == "failed"
    assert out.task_states["finish_request"] == "failed"
    # said by start_request, then by finish_request (which knows it was refused, not failed)
    logged = capsys.readouterr().out
    assert logged.count("request refused: object 'Behavior' is not offered for the next school year") >= 2, logged[-3000:]
    assert not any(s == "success" for k, s in out.task_states.items() if k.startswith(GROUP)), out.task_states
    assert state_snapshot(state) == snap3
    assert one(state, "SELECT count(*) FROM sync.batch WHERE run_id = %s", (out.run_id,)) == 0
    assert len(list_alerts(state)) == 1
