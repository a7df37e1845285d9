"""One object per district per task (the partial resync's shape) through the real DAG
(dag.test()): a bad district value fails its object's task at once (one try, not the retries a
transient failure gets) and the history names side, district, object and column; a refused
connection is what Airflow's retries are for."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from refusing_port import RefusingPort

from campus_sync.orchestration import runner

pytestmark = [pytest.mark.airflow, pytest.mark.db]


def tries(run_id: str, task_id: str) -> list[tuple[int, str]]:
    """(try number, state) of each mapped instance of `task_id` in the run."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return [(ti.try_number, str(getattr(ti.state, "value", ti.state))) for ti in session.query(TaskInstance)
                .filter(TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)]


def test_a_bad_value_fails_the_task_without_retrying(airflow_db, deployment):
    with psycopg.connect(deployment["districts"]["0101"]) as conn:
        conn.execute("ALTER TABLE campus.vaccineshot ALTER COLUMN shotdate TYPE text")
        conn.execute("UPDATE campus.vaccineshot SET shotdate = 'soon' WHERE shotid ="
                     " (SELECT max(shotid) FROM campus.vaccineshot)")
    out = runner.run_dag("campus_partial_resync", {"objects": ["VaccineShot"], "districts": ["0101"]})
    assert out.state == "failed"
    assert out.task_states["district.PersonIdentity[0]"] == "success"
    assert tries(out.run_id, "district.VaccineShot") == [(1, "failed")]
    with psycopg.connect(deployment["state"]) as conn:
        (message,) = conn.execute("SELECT message FROM sync.batch_result WHERE object = 'VaccineShot'").fetchone()
    assert message.startswith("state database: syncing VaccineShot for district 0101: column shotDate: "
                              'invalid input syntax for type date: "soon"'), message


def test_a_refused_connection_is_retried_by_airflow(airflow_db, deployment, server_dsn, monkeypatch):
    """District 0101's database refuses the first connection, then accepts: the object's task
    fails its first try and Airflow's retry syncs it; the history ends green."""
    from campus_sync import db
    from campus_sync.orchestration import dagbuild

    monkeypatch.setitem(dagbuild.DEFAULT_ARGS, "retry_delay", dt.timedelta(seconds=1))  # Airflow's retry, a shorter wait
    with RefusingPort(server_dsn, refuse=1) as port:
        monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_DISTRICT_0101",
                           port.dsn(conninfo_to_dict(deployment["districts"]["0101"])["dbname"]))
        db.dsn.cache_clear()
        out = runner.run_dag("campus_partial_resync", {"objects": ["District"], "districts": ["0101"]})
        assert port.refused == 1
    assert out.state == "success", out.task_states
    assert tries(out.run_id, "district.District") == [(2, "success")]
    with psycopg.connect(deployment["state"]) as conn:
        assert conn.execute("SELECT district_id, object, status FROM sync.batch_result").fetchall() == [
            ("0101", "District", "green")]
