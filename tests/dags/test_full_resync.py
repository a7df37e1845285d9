"""campus_full_resync end to end with dag.test(): state rows, history rows, district isolation."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.orchestration import runner

pytestmark = [pytest.mark.airflow, pytest.mark.db]


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(params=["per_object", "per_district_object"])
def shape(request, monkeypatch, tmp_path):
    """The weekly resync rendered in each shape (the configuration's full_resync_shape)."""
    import os
    from pathlib import Path

    text = Path(os.environ["CAMPUS_SYNC_CONFIG"]).read_text()
    path = tmp_path / "campus_sync.yaml"
    path.write_text(text + f"full_resync_shape: {request.param}\n")
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(path))
    return request.param


def test_full_resync_runs_every_district_and_records_history(airflow_db, deployment, graph, shape):
    state = deployment["state"]
    enabled = graph.enabled("KY")
    # District 0102's Test table is broken: its Test fails, TestScore is not attempted there,
    # and district 0101 is untouched by it.
    with psycopg.connect(deployment["districts"]["0102"]) as conn:
        conn.execute("ALTER TABLE campus.test DROP COLUMN published")

    out = runner.run_dag("campus_full_resync", {})
    assert out.state == "failed"
    if shape == "per_district_object":
        assert out.task_states["district.Test[1]"] == "failed"
        assert out.task_states["district.TestScore[1]"] == "upstream_failed"
        assert out.task_states["district.TestScore[0]"] == "success"
        assert all(out.task_states[f"district.{n}[0]"] == "success" for n in enabled)
    else:  # one task per object: 0101 synced, so the tasks succeed; the history tells 0102's story
        assert len(out.task_states) == len(enabled) + 2
        assert all(out.task_states[n] == "success" for n in enabled)
    assert out.task_states["finish_request"] == "failed"

    # state rows: both districts' persons, only accepted enrollments of the current year
    per_district = dict(q(state, "SELECT district_id, count(*) FROM state.personidentity GROUP BY 1"))
    assert set(per_district) == {"0101", "0102"}
    assert q(state, "SELECT DISTINCT endyear FROM state.enrollment") == [(2027,)]
    assert q(state, "SELECT count(*) FROM state.enrollment WHERE stateexclude") == [(0,)]
    assert q(state, "SELECT count(*) FROM state.testscore WHERE district_id = '0102'") == [(0,)]

    # history: one full batch, one row per object and district with counts and colours
    (batch,) = q(state, "SELECT id, kind, status, requested_by, districts, completed_at IS NOT NULL FROM sync.batch")
    assert batch[1:] == ("full", "failed", "dag_test", ["0101", "0102"], True)
    res = {(d, o): (s, p, e, i) for d, o, s, p, e, i in q(
        state, "SELECT district_id, object, status, processed, errors, inserted FROM sync.batch_result")}
    assert len(res) == 2 * len(enabled)
    assert res[("0102", "Test")][0] == "failed"
    assert res[("0102", "TestScore")][0] == "not_run"
    assert res[("0101", "TestScore")][2] == 6  # the six batch-sync requirements, one each
    assert res[("0101", "TestScore")][0] == "red"
    assert res[("0101", "District")] == ("green", 1, 0, 1)
    persons = q(state, "SELECT count(*) FROM state.personidentity WHERE district_id = '0101'")[0][0]
    assert res[("0101", "PersonIdentity")][3] == persons
    reasons = q(state, "SELECT error_reasons FROM sync.batch_result WHERE district_id = '0101' AND object = 'TestScore'")
    assert reasons[0][0]["student_not_enrolled"] == 1
    message = q(state, "SELECT message FROM sync.batch_result WHERE district_id = '0102' AND object = 'Test'")[0][0]
    assert "published" in message

    # repaired, a second run succeeds and changes nothing that was already right
    with psycopg.connect(deployment["districts"]["0102"]) as conn:
        conn.execute("ALTER TABLE campus.test ADD COLUMN published boolean DEFAULT true")
    out = runner.run_dag("campus_full_resync", {"districts": ["0101"]})
    assert out.state == "success"
    latest = q(state, "SELECT id, status FROM sync.batch ORDER BY id DESC LIMIT 1")[0]
    assert latest[1] == "complete"
    writes = q(state, "SELECT sum(inserted + updated + deleted), count(*) FROM sync.batch_result WHERE batch_id = %s",
               (latest[0],))
    assert writes == [(0, len(enabled))]


def test_unknown_district_refused_at_trigger(airflow_db, deployment):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="9999"):
        runner.run_dag("campus_full_resync", {"districts": ["9999"]})
    assert q(deployment["state"], "SELECT count(*) FROM sync.batch") == [(0,)]
