"""campus_verification_summary with dag.test() where a district has what the sync refuses, or
cannot be verified at all."""

from __future__ import annotations

import psycopg
import pytest
from selective_helpers import DISTRICT, YEAR, execute, q

from campus_sync.engine import sync as engine
from campus_sync.orchestration import runner

pytestmark = [pytest.mark.airflow, pytest.mark.db]


def test_a_null_key_at_the_district_neither_fails_the_dag_nor_the_heal(airflow_db, synced, graph, student):
    state, source = synced["state"], synced["districts"][DISTRICT]
    with psycopg.connect(source) as conn:  # a district table without a primary key, one row keyed NULL
        conn.execute("ALTER TABLE campus.coursecode DROP CONSTRAINT coursecode_pkey")
        conn.execute("ALTER TABLE campus.coursecode ALTER COLUMN code DROP NOT NULL")
        conn.execute("INSERT INTO campus.coursecode SELECT NULL, name, subjectarea FROM campus.coursecode LIMIT 1")
    (result,) = engine.sync_objects(graph, ["CourseCode"], district_id=DISTRICT, source_dsn=source,
                                    state_dsn=state, scope=engine.Scope(YEAR))
    assert result.error_reasons == {"null_key": 1}
    p, _ = student
    execute(state, "UPDATE state.personidentity SET lastname = 'Damaged' WHERE personid = %s", (p,))

    out = runner.run_dag("campus_verification_summary", {"districts": [DISTRICT], "heal": True, "user": "bob"})
    assert out.state == "success", out.task_states
    assert out.task_states == {"verify": "success", "heal": "success"}
    runs = [r[0] for r in q(state, "SELECT id FROM sync.verification_run ORDER BY id")]
    rows = dict(q(state, "SELECT run_id, refused FROM sync.verification_result WHERE object = 'CourseCode'"))
    assert rows == {runs[0]: 1, runs[1]: 1}
    errors = dict(q(state, "SELECT run_id, sum(total_errors) FROM sync.verification_result GROUP BY 1"))
    assert errors == {runs[0]: 1, runs[1]: 0}


def test_a_district_that_cannot_be_verified_fails_the_run_after_the_others_are_stored(airflow_db, synced):
    state = synced["state"]
    with psycopg.connect(synced["districts"]["0101"]) as conn:
        conn.execute("ALTER TABLE campus.plan RENAME COLUMN personid TO person_id")
    out = runner.run_dag("campus_verification_summary", {"districts": ["0101", "0102"], "user": "bob"})
    assert out.state == "failed" and out.task_states["verify"] == "failed", out.task_states
    ((run, details),) = q(state, "SELECT id, details FROM sync.verification_run")
    assert list(details["errors"]) == ["0101"] and "cannot verify Plan" in details["errors"]["0101"]
    stored = q(state, "SELECT DISTINCT district_id FROM sync.verification_result WHERE run_id = %s", (run,))
    assert stored == [("0102",)]
