"""edfi_person_event: the automatic resyncs as triggered runs (real dag.test() against a real
local Ed-Fi API). An Ed-Fi ID changed on a person reaches the API through a run triggered with a
conf, as a Campus-side event would trigger it over REST; bad events are refused naming the field."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
from resync_helpers import documents, point_connection, seed_edfi, start_fresh_api  # noqa: E402

from campus_sync.orchestration.runner import run_dag  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.airflow]
DAG_ID = "edfi_person_event"


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch, airflow_db):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    yield {**deployment, "api": api, "info": info, "dsn": deployment["districts"]["0101"]}
    api.stop()


def test_edfi_id_changed_event_resyncs_the_person(edfi):
    from campus_sync.edfi import resync

    assert resync.run({"configuration": "demo", "all_schools": True}, user="tester")["status"] == "complete"
    with psycopg.connect(edfi["dsn"]) as conn:
        person, old_id = conn.execute(
            "SELECT x.personid, x.edfiid FROM campus_edfi.person_edfi_id x JOIN campus.enrollment e USING (personid)"
            " WHERE x.edfiid IS NOT NULL AND e.endyear = 2027 ORDER BY x.personid LIMIT 1").fetchone()
        conn.execute("UPDATE campus_edfi.person_edfi_id SET edfiid = 'NEW' || edfiid WHERE personid = %s", (person,))
    out = run_dag(DAG_ID, {"configuration": "demo", "event": "edfi_id_changed", "person_id": str(person)})
    assert out.ok, out.task_states
    students = {d["studentUniqueId"] for d in documents(edfi["info"], "students")}
    assert "NEW" + old_id in students and old_id not in students
    from campus_sync.tools import history

    with psycopg.connect(edfi["state"]) as conn:
        latest = history.batches(conn, limit=1)[0]
    assert latest["kind"] == "edfi_resync" and latest["status"] == "complete"


@pytest.mark.parametrize("conf, message", [
    ({"configuration": "demo", "event": "edfi_id_changed"}, "person_id: give exactly one person ID"),
    ({"configuration": "demo", "event": "combine_person", "person_id": "5"}, "deleted_person_id"),
    ({"configuration": "demo", "event": "combine_person", "person_id": "5", "deleted_person_id": "5"},
     "the same person"),
    ({"configuration": "demo", "event": "edfi_id_changed", "person_id": "12x"}, "'12x' not a positive"),
    ({"configuration": "demo"}, "no event"),
])
def test_bad_events_are_refused_naming_the_field(edfi, conf, message, capfd):
    out = run_dag(DAG_ID, conf)
    assert out.state == "failed" and out.task_states["resync_people"] == "failed"
    logged = "".join(capfd.readouterr())
    assert f"request refused: " in logged and message in logged


def test_unknown_event_refused_at_trigger_time(edfi):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="event"):
        run_dag(DAG_ID, {"configuration": "demo", "event": "merge", "person_id": "5"})


def test_asset_event_extra_is_read_like_a_conf():
    from campus_sync.edfi.request import EdfiRequestError
    from campus_sync.orchestration.edfi_dags import person_event_from

    assert person_event_from({"event": "combine_person", "person_id": 7, "deleted_person_id": "9"}, "demo") == {
        "event": "combine_person", "configuration": "demo", "person_id": "7", "deleted_person_id": "9"}
    with pytest.raises(EdfiRequestError, match="unknown Ed-Fi configuration 'nowhere'"):
        person_event_from({"event": "edfi_id_changed", "person_id": 7, "configuration": "nowhere"}, "demo")
    with pytest.raises(EdfiRequestError, match="configuration: choose"):
        person_event_from({"event": "edfi_id_changed", "person_id": 7}, None)
