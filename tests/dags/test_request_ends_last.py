"""A request ends after its objects: finish_request waits for every object task of every district
(not only the group's leaves, which a partial resync skips at once), so the request's status,
the run's state and every result row are final when it runs. A result row never stays gray."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.tools import history
from campus_sync.tools import liveness
from campus_sync.orchestration import runner
from campus_sync.orchestration import tasks

pytestmark = [pytest.mark.airflow, pytest.mark.db]
DAG_ID = "campus_partial_resync"


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_every_task_is_upstream_of_finish_request(airflow_db):
    """In every DAG that closes a request, finish_request waits on every other task directly and
    is the run's only leaf (so the run fails exactly when it does)."""
    from airflow.serialization.serialized_objects import DagSerialization

    checked = []
    for dag_id in ("campus_full_resync", "campus_partial_resync", "campus_attendance_resync",
                   "campus_selective_sync"):
        try:
            dag = runner.get_dag(dag_id)
        except KeyError:  # the attendance DAG exists only where the state syncs attendance
            continue
        served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
        finish = served.get_task("finish_request")
        others = {t.task_id for t in served.tasks} - {"finish_request"}
        assert finish.upstream_task_ids == others, (dag_id, sorted(others - finish.upstream_task_ids))
        assert [t.task_id for t in served.tasks if not t.downstream_task_ids] == ["finish_request"], dag_id
        assert finish.trigger_rule == "all_done", dag_id
        checked.append(dag_id)
    assert {"campus_full_resync", "campus_partial_resync", "campus_selective_sync"} <= set(checked)


def test_a_refused_non_leaf_object_fails_the_request_and_the_run(airflow_db, deployment):
    """PersonIdentity with its ancestors (its children skipped at once, so the group's leaves are
    all done before District starts) is refused by the mass-delete guard: the request is closed
    after every planned object ended, as failed, and the run fails."""
    state, src = deployment["state"], deployment["districts"]["0101"]
    conf = {"objects": ["PersonIdentity"], "districts": ["0101"]}
    first = runner.run_dag(DAG_ID, conf)
    assert first.ok, first.task_states
    with psycopg.connect(src) as conn:  # the district loses 60 % of its people
        conn.execute("DELETE FROM campus.personidentity WHERE personid IN (SELECT personid FROM"
                     " campus.personidentity ORDER BY personid LIMIT (SELECT count(*) * 6 / 10"
                     " FROM campus.personidentity))")

    out = runner.run_dag(DAG_ID, conf)
    assert out.task_states["district.PersonIdentity[0]"] == "failed", out.task_states
    assert out.task_states["finish_request"] == "failed", out.task_states
    assert out.state == "failed", out.task_states
    ((batch_id, status, completed, details),) = q(
        state, "SELECT id, status, completed_at, details FROM sync.batch WHERE run_id = %s", (out.run_id,))
    assert status == "failed" and details["failed"] == ["0101:PersonIdentity"], details
    results = {o: (s, f, m) for o, s, f, m in q(
        state, "SELECT object, status, finished_at, message FROM sync.batch_result WHERE batch_id = %s", (batch_id,))}
    planned = ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity"]
    assert sorted(results) == sorted(planned)
    assert results["PersonIdentity"][0] == "failed" and "confirm_deletes" in results["PersonIdentity"][2]
    assert all(results[o][0] in ("green", "yellow", "red") for o in planned[:-1]), results
    assert all(f is not None and f <= completed for _, f, _ in results.values()), (completed, results)
    assert q(state, "SELECT count(*) FROM state.personidentity WHERE district_id = '0101'")[0][0] > 0


def _batch(conn, run_id: str) -> int:
    return history.create_batch(conn, kind="partial", requested_by="t", school_year="current", end_year=2027,
                                check_dependencies=True, districts=["0101", "0102"],
                                objects=["District", "School"], dag_id="d", run_id=run_id)


def test_finish_request_closes_results_left_without_an_end(deployment):
    """An object whose task died after it recorded its start, in a state that says nothing of it
    (e.g. the task instance was cleared or removed), does not stay gray under a finished request."""
    with psycopg.connect(deployment["state"]) as conn:
        batch = _batch(conn, "r1")
        history.record_start(conn, batch, "0101", "District")
        history.record_start(conn, batch, "0101", "School")
    units = [{"batch_id": batch, "district_id": d, "objects": ["District", "School"]} for d in ("0101", "0102")]
    district_ok = {"district_id": "0101", "object": "District", "processed": 1}
    summary = tasks.finish_request(units, {("District", 0): ("success", district_ok),
                                           ("School", 0): ("removed", None),
                                           ("District", 1): ("skipped", None)})
    assert summary["status"] == "failed" and summary["failed"] == ["0101:School"], summary
    rows = dict(((d, o), (s, f is not None)) for d, o, s, f in q(
        deployment["state"], "SELECT district_id, object, status, finished_at FROM sync.batch_result"
                             " WHERE batch_id = %s", (batch,)))
    assert rows == {("0101", "District"): ("green", True), ("0101", "School"): ("abandoned", True)}


def test_reap_closes_gray_results_of_finished_requests(deployment):
    """A request closed while one of its objects still showed gray (closed before that object's
    task ended) has that row closed as abandoned once its run is gone, and is no longer complete;
    a request whose run is still alive keeps its gray rows (the task may still write its result)."""
    dsn = deployment["state"]
    runs = {"r-done": "failed", "r-cleared": "running", "r-live": "running"}
    with psycopg.connect(dsn) as conn:
        done = _batch(conn, "r-done")
        history.record_start(conn, done, "0101", "School")
        history.record_result(conn, done, {"district_id": "0101", "object": "District", "processed": 1})
        history.finish_batch(conn, done, "complete")
        cleared = _batch(conn, "r-cleared")  # finished, then a task cleared and run again in Airflow
        history.record_start(conn, cleared, "0101", "School")
        history.finish_batch(conn, cleared, "complete")
        live = _batch(conn, "r-live")
        history.record_start(conn, live, "0101", "School")
        assert liveness.reap(conn, lambda d, r: None) == []  # Airflow cannot be asked: nothing changes
        assert q(dsn, "SELECT count(*) FROM sync.batch_result WHERE status = 'gray'") == [(3,)]
        assert liveness.reap(conn, lambda d, r: runs[r]) == []  # no running batch was abandoned
    assert q(dsn, "SELECT status, finished_at IS NOT NULL, message FROM sync.batch_result WHERE batch_id = %s"
                  " AND object = 'School'", (done,)) == [("abandoned", True, liveness.LEFT_WITHOUT_END)]
    assert q(dsn, "SELECT status FROM sync.batch_result WHERE batch_id = %s AND object = 'District'",
             (done,)) == [("green",)]
    assert q(dsn, "SELECT status, details->'abandoned_objects' FROM sync.batch WHERE id = %s", (done,)) == [
        ("failed", ["0101:School"])]
    assert q(dsn, "SELECT b.status, r.status FROM sync.batch b JOIN sync.batch_result r ON r.batch_id = b.id"
                  " WHERE b.id IN (%s, %s) ORDER BY b.id", (cleared, live)) == [("complete", "gray"), ("running", "gray")]
