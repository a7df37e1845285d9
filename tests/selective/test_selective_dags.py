"""campus_selective_sync and campus_verification_summary end to end with dag.test() (few runs: each
task instance costs a fraction of a second; the logic is tested as plain Python elsewhere)."""

from __future__ import annotations

import pytest
from selective_helpers import DISTRICT, execute, q

from campus_sync.orchestration import runner

pytestmark = [pytest.mark.airflow, pytest.mark.db]


def test_selective_sync_dag(airflow_db, synced, student, capsys):
    from airflow.sdk.exceptions import ParamValidationError

    state = synced["state"]
    p, other = student
    for pid in (p, other):
        execute(state, "UPDATE state.personidentity SET lastname = 'Damaged' WHERE personid = %s", (pid,))

    # refused at trigger time by the form's schema (unknown district, no IDs); no batch is made
    with pytest.raises(ParamValidationError, match="9999"):
        runner.run_dag("campus_selective_sync", {"object": "PersonIdentity", "ids": f"{p}", "district": "9999"})
    with pytest.raises(ParamValidationError, match="param ids"):
        runner.run_dag("campus_selective_sync", {"object": "PersonIdentity", "ids": "", "district": DISTRICT})
    assert q(state, "SELECT count(*) FROM sync.batch") == [(0,)]

    # a bad ID is refused by the first task naming just the bad tokens (not the whole text and a
    # regex), and finish_request says it was refused; no batch is made
    capsys.readouterr()
    out = runner.run_dag("campus_selective_sync", {"object": "PersonIdentity", "ids": f"{p}, abc\n0 12",
                                                   "district": DISTRICT})
    assert out.state == "failed" and out.task_states["start_request"] == "failed", out.task_states
    assert out.task_states["finish_request"] == "failed"
    logged = capsys.readouterr().out
    assert logged.count("request refused: IDs 'abc', '0' not a positive whole number") >= 2, logged[-3000:]
    assert f"{p}, abc" not in logged and "[0-9]" not in logged
    assert q(state, "SELECT count(*) FROM sync.batch") == [(0,)]

    # a list of IDs (as a run's conf may give it), with a duplicate and an unknown one
    out = runner.run_dag("campus_selective_sync", {"object": "PersonIdentity", "ids": [str(p), p, 424242],
                                                   "district": DISTRICT, "user": "alice"})
    assert out.state == "success", out.task_states
    assert out.task_states == {"start_request": "success", "sync_objects": "success", "finish_request": "success"}
    (batch,) = q(state, "SELECT id, kind, status, requested_by, dag_id, details->>'records', completed_at IS NOT NULL"
                        " FROM sync.batch")
    assert batch[1:] == ("selective", "complete", "alice", "campus_selective_sync", "1/2", True)
    assert q(state, "SELECT key_value, ok, reason FROM sync.selective_key ORDER BY key_value") == [
        (424242, False, "not found at district"), (p, True, "")]
    names = dict(q(synced["districts"][DISTRICT], "SELECT personid, lastname FROM campus.personidentity"
                                                  " WHERE personid = ANY(%s)", ([p, other],)))
    assert q(state, "SELECT lastname FROM state.personidentity WHERE personid = %s", (p,)) == [(names[p],)]
    assert q(state, "SELECT lastname FROM state.personidentity WHERE personid = %s", (other,)) == [("Damaged",)]


def test_verification_summary_dag_heals(airflow_db, synced, student):
    state = synced["state"]
    p, _ = student
    execute(state, "UPDATE state.personidentity SET lastname = 'Damaged' WHERE personid = %s", (p,))
    out = runner.run_dag("campus_verification_summary", {"districts": [DISTRICT], "heal": True, "user": "bob"})
    assert out.state == "success", out.task_states
    assert out.task_states == {"verify": "success", "heal": "success"}
    runs = q(state, "SELECT id, previous_run_id, requested_by, dag_id, heal FROM sync.verification_run ORDER BY id")
    assert [(r[1] is not None, r[2], r[3], r[4]) for r in runs] == [
        (False, "bob", "campus_verification_summary", True), (True, "bob", "campus_verification_summary", False)]
    errors = dict(q(state, "SELECT run_id, sum(total_errors) FROM sync.verification_result GROUP BY 1"))
    assert errors == {runs[0][0]: 1, runs[1][0]: 0}
    assert q(state, "SELECT kind, requested_by, details->>'records' FROM sync.batch") == [
        ("selective", "bob (verification heal)", "1/1")]
    assert q(state, "SELECT lastname <> 'Damaged' FROM state.personidentity WHERE personid = %s", (p,)) == [(True,)]
