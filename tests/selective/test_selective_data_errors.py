"""A selective sync whose object meets a bad district value: that object fails at once (no
retry of the whole request), its descendants are not run, and the report says why for each ID,
naming the side, the district, the object and the column; the request ends even when the value
is in the key column the report reads back. A district that refuses connections is left to
Airflow's retries. Real PostgreSQL."""

from __future__ import annotations

import socket

import psycopg
import pytest
from selective_helpers import DISTRICT, q

from campus_sync.engine import sync as engine
from campus_sync.tools import selective

pytestmark = pytest.mark.db


def test_a_bad_value_fails_the_object_and_names_it_for_each_id(synced, student):
    p, _ = student
    with psycopg.connect(synced["districts"][DISTRICT]) as conn:
        conn.execute("ALTER TABLE campus.personidentity ALTER COLUMN birthdate TYPE text")
        conn.execute("UPDATE campus.personidentity SET birthdate = 'unknown' WHERE personid = %s", (p,))
    summary = selective.run({"object": "PersonIdentity", "ids": str(p), "district": DISTRICT}, user="tester")
    assert summary["status"] == "failed" and summary["failed_objects"] == ["PersonIdentity"]
    assert summary["not_run"] and "Enrollment" in summary["not_run"]
    assert summary["records"] == "0/1"
    reason = summary["failed"][p]
    assert reason.startswith("sync failed: state database: syncing PersonIdentity for district 0101: "
                             'column birthDate: invalid input syntax for type date: "unknown"'), reason
    (message,) = q(synced["state"], "SELECT message FROM sync.batch_result WHERE object = 'PersonIdentity'")[0]
    assert "column birthDate" in message and "not retried" in message


def break_person_keys(dsn: str, person: int) -> None:
    """The district serves PersonIdentity through a view that casts a text personID, and one
    other person's ID is not a number: every read of the extract filtered by personID fails."""
    with psycopg.connect(dsn) as conn:
        conn.execute("ALTER TABLE campus.personidentity RENAME TO personidentity_raw")
        conn.execute("ALTER TABLE campus.personidentity_raw ALTER COLUMN personid TYPE text")
        conn.execute("UPDATE campus.personidentity_raw SET personid = 'P' || personid WHERE personid ="
                     " (SELECT max(personid) FROM campus.personidentity_raw WHERE personid <> %s)", (str(person),))
        conn.execute("CREATE VIEW campus.personidentity AS SELECT personid::integer AS personid, stateid, lastname,"
                     " firstname, middlename, gender, birthdate, raceethnicity FROM campus.personidentity_raw")


KEY_ERROR = "sync failed: district database: syncing PersonIdentity for district 0101: "


def test_a_bad_value_in_the_key_column_fails_each_id_and_ends_the_request(synced, student):
    """The per-ID outcomes read the district's extract again: the same data error there fails
    every ID with the object's reason instead of failing (and retrying) the request's end."""
    p, _ = student
    break_person_keys(synced["districts"][DISTRICT], p)
    summary = selective.run({"object": "PersonIdentity", "ids": str(p), "district": DISTRICT}, user="tester")
    assert summary["status"] == "failed" and summary["failed_objects"] == ["PersonIdentity"]
    assert summary["records"] == "0/1" and "Enrollment" in summary["not_run"]
    assert summary["failed"][p].startswith(KEY_ERROR), summary["failed"][p]
    assert 'invalid input syntax for type integer: "P' in summary["failed"][p] and "not retried" in summary["failed"][p]
    assert q(synced["state"], "SELECT status, completed_at IS NOT NULL FROM sync.batch") == [("failed", True)]
    (reason,) = q(synced["state"], "SELECT reason FROM sync.selective_key WHERE key_value = %s", (p,))[0]
    assert reason.startswith(KEY_ERROR)


@pytest.mark.airflow
def test_a_bad_value_in_the_key_column_ends_the_dag_run_without_a_retry(airflow_db, synced, student):
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    from campus_sync.orchestration import runner

    p, _ = student
    break_person_keys(synced["districts"][DISTRICT], p)
    out = runner.run_dag("campus_selective_sync", {"object": "PersonIdentity", "ids": str(p), "district": DISTRICT})
    assert out.state == "failed"
    assert out.task_states == {"start_request": "success", "sync_objects": "failed", "finish_request": "failed"}
    with create_session() as session:
        tried = {ti.task_id: ti.try_number for ti in session.query(TaskInstance).filter(TaskInstance.run_id == out.run_id)}
    assert tried == {"start_request": 1, "sync_objects": 1, "finish_request": 1}  # data errors: never retried
    assert q(synced["state"], "SELECT status, details->>'records' FROM sync.batch") == [("failed", "0/1")]


def test_a_district_that_refuses_connections_is_left_to_airflow_to_retry(synced, student, monkeypatch):
    """A refused connection is raised (Airflow retries the task: each try a fresh connection and
    transaction), not recorded as the object failing for good; the request still ends."""
    from campus_sync import config, db, hierarchy

    p, _ = student
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_DISTRICT_0101", f"postgresql://nobody@127.0.0.1:{s.getsockname()[1]}/x")
    db.dsn.cache_clear()
    req = selective.build_request(hierarchy.load(), config.load(), {"object": "PersonIdentity", "ids": str(p),
                                                                   "district": DISTRICT}, user="tester")
    unit = selective.start(req)
    with pytest.raises(engine.ConnectionFailedError, match="district database: syncing PersonIdentity"):
        selective.sync(unit)
    summary = selective.finish(unit)  # what finish_request does once the retries are spent
    assert summary["status"] == "failed" and summary["failed_objects"] == ["PersonIdentity"]
    assert summary["failed"][p].startswith("sync failed: district database: syncing PersonIdentity"), summary
    assert q(synced["state"], "SELECT status FROM sync.batch") == [("failed",)]
