"""The attendance resync end to end with dag.test() on real PostgreSQL, for an NV deployment: the refresh is
its own task before AttDayAggregation in every DAG that syncs it; a backdated attendance change
reaches the state only through the refresh; a failed refresh syncs no stale aggregates; the NV
full resync is green where the demo data is clean."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import psycopg
import pytest
from attendance_helpers import NV_DISTRICTS, YEAR

from campus_sync.tools import alerts
from campus_sync.tools import attendance
from campus_sync.tools import history
from campus_sync.orchestration.runner import get_dag, run_dag

pytestmark = [pytest.mark.airflow, pytest.mark.db]
KY_CONFIG = os.environ["CAMPUS_SYNC_CONFIG"]  # the session's test configuration (tests/conftest.py)
PRESET = "campus_attendance_resync"
GROUP = "district"
REFRESH, AGG = attendance.REFRESH, attendance.AGGREGATE
# what the demo data breaks on purpose (demo.py): every other refusal would be a defect
DELIBERATE = {"state_excluded_calendar", "state_excluded_enrollment", "state_excluded_grade_level",
              "score_undated", "out_of_scope_year", "test_no_state_code", "test_not_published",
              "student_not_enrolled", "test_district_locked"}


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def latest_batch(state) -> dict:
    with psycopg.connect(state) as conn:
        (batch,) = history.batches(conn, limit=1)
    batch["by"] = {(r["district"], r["object"]): r for r in batch["results"]}
    return batch


def messages(state, batch_id) -> dict:
    return {(d, o): m for d, o, m in q(state, "SELECT district_id, object, message FROM sync.batch_result "
                                              "WHERE batch_id = %s", (batch_id,))}


def state_agg(state, district) -> list[tuple]:
    return q(state, "SELECT aggregationid, enrollmentid, date, minutespresent, minutesabsent, excuseid, synced_at "
                    "FROM state.attdayaggregation WHERE district_id = %s ORDER BY aggregationid", (district,))


def task_windows(run_id: str) -> dict[str, tuple]:
    """(start, end) of every task instance of the run, from Airflow's metadata."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == run_id).all()
        return {f"{ti.task_id}[{ti.map_index}]": (ti.start_date, ti.end_date) for ti in tis}


def assert_refresh_first(run_id: str, indexes) -> None:
    win = task_windows(run_id)
    for i in indexes:
        refresh, agg = win[f"{GROUP}.{REFRESH}[{i}]"], win[f"{GROUP}.{AGG}[{i}]"]
        assert refresh[1] is not None and agg[0] is not None and refresh[1] <= agg[0], (i, refresh, agg)


def backdate(dsn) -> tuple[int, dt.date, int, int]:
    """A backdated change at the district: an early present period becomes an absence, today.
    Returns the (enrollment, date) and the aggregate's minutes before the change."""
    att, enr, day = q(dsn, "SELECT attendanceid, enrollmentid, date FROM campus.attendance WHERE endyear = %s "
                           "AND status = 'P' ORDER BY date, attendanceid LIMIT 1", (YEAR,))[0]
    (present, absent), = q(dsn, "SELECT minutespresent, minutesabsent FROM campus.attdayaggregation "
                                "WHERE enrollmentid = %s AND date = %s", (enr, day))
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE campus.attendance SET presentminutes = 0, status = 'A', modifieddate = now() "
                     "WHERE attendanceid = %s", (att,))
    return enr, day, present, absent


def test_refresh_task_precedes_attdayaggregation_in_every_dag(nv_config, airflow_db, graph, monkeypatch, tmp_path):
    for dag_id in ("campus_full_resync", "campus_partial_resync", PRESET):
        dag = get_dag(dag_id)
        refresh = dag.get_task(f"{GROUP}.{REFRESH}")
        assert refresh.downstream_task_ids == {f"{GROUP}.{AGG}", "finish_request"}, dag_id  # the request waits for it
        assert f"{GROUP}.{REFRESH}" in dag.get_task(f"{GROUP}.{AGG}").upstream_task_ids
        param = dag.params.get_param(attendance.PARAM)
        assert param.value is True and param.schema["type"] == "boolean", dag_id
    preset = get_dag(PRESET)
    plan = graph.plan(["AttDayAggregation", "AttendanceExcuse"], True, "current", "NV").objects
    assert {t.task_id for t in preset.tasks} == \
        {"start_request", "finish_request", f"{GROUP}.{REFRESH}"} | {f"{GROUP}.{n}" for n in plan}
    assert set(plan) == {"District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment",
                         "AttDayAggregation", "AttendanceExcuse"}
    defaults = {k: preset.params[k] for k in preset.params}
    assert defaults == {"districts": [], "check_dependencies": True, "objects": ["AttDayAggregation", "AttendanceExcuse"],
                        "school_year": "current", "requested_by": "state", attendance.PARAM: True,
                        "confirm_deletes": False}
    assert preset.schedule is None and "Attendance Aggregation Refresh" in preset.doc_md

    # the weekly resync in its per-object shape: one refresh task (every district inside it), before
    # AttDayAggregation and waited for by the request
    per_object = tmp_path / "nevada_per_object.yaml"
    per_object.write_text(Path(os.environ["CAMPUS_SYNC_CONFIG"]).read_text().replace(
        "full_resync_shape: per_district_object", "full_resync_shape: per_object"))
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(per_object))
    weekly = get_dag("campus_full_resync")
    refresh = weekly.get_task(REFRESH)
    assert {AGG, "finish_request"} <= refresh.downstream_task_ids
    assert REFRESH in weekly.get_task(AGG).upstream_task_ids
    assert weekly.params.get_param(attendance.PARAM).value is True

    # a KY deployment syncs neither attendance object: no refresh task, no param, no preset
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", KY_CONFIG)
    full = get_dag("campus_full_resync")
    assert not {REFRESH, f"{GROUP}.{REFRESH}"} & set(full.task_ids) and attendance.PARAM not in full.params
    with pytest.raises(KeyError, match=PRESET):
        get_dag(PRESET)


def test_attendance_resync_end_to_end(nv, airflow_db, graph):
    state, nv02, nv16 = nv["state"], nv["districts"]["NV02"], nv["districts"]["NV16"]
    enabled = graph.enabled("NV")

    # 1. the NV full resync (one district): every NV object has demo rows; green where the data is clean
    out = run_dag("campus_full_resync", {"districts": ["NV02"]})
    assert out.ok, {k: v for k, v in out.task_states.items() if v != "success"}
    assert_refresh_first(out.run_id, [0])
    full = latest_batch(state)
    assert full["status"] == "complete" and full["objects"] == list(enabled)
    assert {o for d, o in full["by"]} == set(enabled) | {REFRESH}
    for name in enabled:
        r = full["by"][("NV02", name)]
        assert r["processed"] > 0, name  # the demo covers every object NV syncs
        assert (r["status"] == "green") == (r["errors"] == 0), r
        assert all(k in DELIBERATE or k.startswith("parent_missing:") for k in r["error_reasons"]), r
    for name in ("District", "School", "PersonIdentity", "Test", AGG):
        assert full["by"][("NV02", name)]["status"] == "green", name
    n_agg = q(nv02, "SELECT count(*) FROM campus.attdayaggregation WHERE endyear = %s", (YEAR,))[0][0]
    refresh = full["by"][("NV02", REFRESH)]
    assert (refresh["status"], refresh["processed"], refresh["updated"], refresh["unchanged"]) == \
        ("green", n_agg, 0, n_agg)
    assert refresh["finished_at"] <= full["by"][("NV02", AGG)]["started_at"]
    assert full["by"][("NV02", AGG)]["inserted"] == n_agg == len(state_agg(state, "NV02"))
    assert "recomputed" in messages(state, full["id"])[("NV02", REFRESH)]

    # 2. a backdated change at the district; the attendance resync WITHOUT the refresh syncs the
    #    aggregates as the district has them: the change is not at the state
    enr, day, present, absent = backdate(nv02)
    agg_before = state_agg(state, "NV02")
    out = run_dag(PRESET, {"districts": ["NV02"], attendance.PARAM: False, "requested_by": "district"})
    assert out.ok, out.task_states
    assert out.task_states[f"{GROUP}.{REFRESH}[0]"] == "skipped"
    assert out.task_states[f"{GROUP}.{AGG}[0]"] == "success"
    off = latest_batch(state)
    assert off["kind"] == "partial" and off["status"] == "complete"
    assert off["by"][("NV02", REFRESH)]["status"] == "not_run"
    assert messages(state, off["id"])[("NV02", REFRESH)] == attendance.OFF_MESSAGE
    assert (off["by"][("NV02", AGG)]["status"], off["by"][("NV02", AGG)]["updated"]) == ("green", 0)
    assert state_agg(state, "NV02") == agg_before
    assert q(state, "SELECT minutespresent, minutesabsent FROM state.attdayaggregation WHERE district_id = 'NV02' "
                    "AND enrollmentid = %s AND date = %s", (enr, day)) == [(present, absent)]

    # 3. the one-click attendance resync (defaults: every district, refresh on, a state request):
    #    refresh first, then the aggregates; the backdated change is at the state
    out = run_dag(PRESET, {})
    assert out.ok, out.task_states
    assert_refresh_first(out.run_id, [0, 1])
    assert q(state, "SELECT minutespresent, minutesabsent FROM state.attdayaggregation WHERE district_id = 'NV02' "
                    "AND enrollmentid = %s AND date = %s", (enr, day)) == [(present - 180, absent + 180)]
    on = latest_batch(state)
    assert (on["kind"], on["status"], on["districts"]) == ("state_request", "complete", list(NV_DISTRICTS))
    r = on["by"][("NV02", REFRESH)]
    assert (r["status"], r["processed"], r["updated"], r["inserted"], r["deleted"]) == ("green", n_agg, 1, 0, 0)
    assert (on["by"][("NV02", AGG)]["updated"], on["by"][("NV02", AGG)]["inserted"]) == (1, 0)
    n16 = q(nv16, "SELECT count(*) FROM campus.attdayaggregation WHERE endyear = %s", (YEAR,))[0][0]
    assert on["by"][("NV16", AGG)]["inserted"] == n16 == on["by"][("NV16", REFRESH)]["processed"] > 0
    assert on["by"][("NV16", "AttendanceExcuse")]["processed"] > 0
    with psycopg.connect(state) as conn:
        assert sorted(a["district"] for a in alerts.list_alerts(conn)) == list(NV_DISTRICTS)

    # 4. NV16's refresh fails (its routine is gone) while its aggregates changed at the district:
    #    NV16's AttDayAggregation is not run, the state keeps its aggregates, the history says why;
    #    NV02 is not held back
    with psycopg.connect(nv16) as conn:
        conn.execute("DROP FUNCTION campus.refresh_attendance_aggregation(integer)")
        conn.execute("UPDATE campus.attdayaggregation SET minutespresent = 0 WHERE aggregationid = "
                     "(SELECT min(aggregationid) FROM campus.attdayaggregation WHERE endyear = %s)", (YEAR,))
    backdate(nv02)
    agg16 = state_agg(state, "NV16")
    out = run_dag(PRESET, {"requested_by": "district"})
    assert out.state == "failed"
    assert out.task_states[f"{GROUP}.{REFRESH}[1]"] == "failed"
    assert out.task_states[f"{GROUP}.{AGG}[1]"] == "upstream_failed"
    assert out.task_states[f"{GROUP}.AttendanceExcuse[1]"] == "success"
    assert out.task_states[f"{GROUP}.{AGG}[0]"] == "success"
    assert state_agg(state, "NV16") == agg16  # untouched: not even re-stamped
    bad = latest_batch(state)
    assert bad["status"] == "failed" and bad["details"]["failed"] == [f"NV16:{REFRESH}"]
    assert bad["details"]["not_run"] == [f"NV16:{AGG}"]
    assert bad["by"][("NV16", REFRESH)]["status"] == "failed"
    assert bad["by"][("NV16", AGG)]["status"] == "not_run"
    msg = messages(state, bad["id"])
    assert "refresh failed at district NV16" in msg[("NV16", REFRESH)]
    assert "UndefinedFunction: function campus.refresh_attendance_aggregation(" in msg[("NV16", REFRESH)]
    assert msg[("NV16", AGG)] == attendance.NOT_RUN_MESSAGE
    assert (bad["by"][("NV02", REFRESH)]["updated"], bad["by"][("NV02", AGG)]["updated"]) == (1, 1)
