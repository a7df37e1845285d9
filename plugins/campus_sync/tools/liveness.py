"""Every request ends: a batch whose run died is closed as `abandoned`, with the reason.

A batch records who runs it (`sync.batch.owner`):

- **one process** (`make demo`, `make dag`, `campus-sync dag run`: `dag.test()` runs every task in
  the process that started it): the runner keeps one session open on the state database for the
  whole run and the batch records that session (`backend_pid` + `backend_start`). The session
  ends with the process, however it dies (`kill -9` included: the server sees the socket close),
  so "is that session still in `pg_stat_activity`?" answers "is the run alive?" exactly, from any
  machine that can read the state database.
- **an Airflow DAG run** (scheduler and workers): the run is alive while Airflow says it is
  `queued` or `running`. A batch still `running` whose DAG run Airflow reports `success` or
  `failed` (its last task was killed, the worker lost, the run marked failed by hand) ended without
  closing it. Only a definite final state counts: a run Airflow cannot be asked about is left as
  it is.

`reap()` runs at the start of every request (inside Airflow, asking through the task's execution
API) and in `campus-sync history` / `history clear` (asking Airflow's metadata database when it
is reachable). An abandoned batch's unfinished object rows (gray) become `abandoned` too, so the
Resync results never stay gray; so do the gray rows of a finished batch whose run is gone (its
request was closed before the object's task ended). `history clear` removes abandoned batches
like finished ones.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable

import psycopg

OWNER_ENV = "CAMPUS_SYNC_OWNER"
FINAL_RUN_STATES = ("success", "failed")

DagRunState = Callable[[str, str], "str | None"]  # (dag_id, run_id) -> Airflow's state, None: unknown


def process_owner(conn: psycopg.Connection) -> dict:
    """The owner record of a one-process run, for the session `conn` (kept open by the runner)."""
    pid, started = conn.execute("SELECT pg_backend_pid(), backend_start FROM pg_stat_activity"
                                " WHERE pid = pg_backend_pid()").fetchone()
    return {"backend_pid": pid, "backend_start": started.isoformat(), "host": socket.gethostname(),
            "pid": os.getpid()}


def current_owner(dag_id: str | None, run_id: str | None) -> dict:
    """Who runs a request being recorded now: the runner's process when it set one, else the
    Airflow DAG run."""
    raw = os.environ.get(OWNER_ENV)
    if raw:
        return json.loads(raw)
    return {"dag_id": dag_id, "run_id": run_id}


def reap(conn: psycopg.Connection, dagrun_state: DagRunState | None = None, *, commit: bool = True) -> list[int]:
    """Close every `running` batch whose run is gone as `abandoned`; return their ids. With
    commit=False the caller's transaction carries the change (create_batch commits it with the
    new request, and the request's alerts keep the same now()).

    A finished batch whose run is gone but which still shows an object gray (its request was
    closed before that object's task ended) gets that row closed as `abandoned` too, and a
    `complete` one becomes `failed`: a result row never stays without an end."""
    running = conn.execute(
        "SELECT id, owner, dag_id, run_id, status FROM sync.batch WHERE status = 'running'"
        " OR id IN (SELECT batch_id FROM sync.batch_result WHERE status = 'gray') ORDER BY id").fetchall()
    dead: dict[int, str] = {}
    for batch_id, owner, dag_id, run_id, status in running:
        reason = _gone(conn, owner or {}, dag_id, run_id, dagrun_state)
        if reason is None:
            continue
        if status == "running":
            dead[batch_id] = reason
        else:
            _close_left_results(conn, batch_id)
    for batch_id, reason in dead.items():
        conn.execute("UPDATE sync.batch_result SET status = 'abandoned', finished_at = now(),"
                     " message = coalesce(message, %s) WHERE batch_id = %s AND status = 'gray'",
                     (reason, batch_id))
        conn.execute("UPDATE sync.batch SET status = 'abandoned', completed_at = now(),"
                     " details = details || jsonb_build_object('abandoned', %s::text)"
                     " WHERE id = %s AND status = 'running'", (reason, batch_id))
    if commit:
        conn.commit()
    return sorted(dead)


LEFT_WITHOUT_END = "its task ended without recording a result (the request was already closed)"


def _close_left_results(conn: psycopg.Connection, batch_id: int) -> None:
    """Close a finished batch's gray rows as abandoned; the request did not complete them."""
    left = conn.execute("UPDATE sync.batch_result SET status = 'abandoned', finished_at = now(),"
                        " message = coalesce(message, %s) WHERE batch_id = %s AND status = 'gray'"
                        " RETURNING district_id || ':' || object", (LEFT_WITHOUT_END, batch_id)).fetchall()
    conn.execute("UPDATE sync.batch SET status = CASE status WHEN 'complete' THEN 'failed' ELSE status END,"
                 " details = details || jsonb_build_object('abandoned_objects', %s::jsonb) WHERE id = %s",
                 (json.dumps(sorted(r[0] for r in left)), batch_id))


def _gone(conn: psycopg.Connection, owner: dict, dag_id: str | None, run_id: str | None,
          dagrun_state: DagRunState | None) -> str | None:
    """Why the batch's run is gone, or None while it is alive or nobody can tell."""
    if "backend_pid" in owner:
        alive = conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s AND backend_start = %s::timestamptz",
                             (owner["backend_pid"], owner["backend_start"])).fetchone()
        if alive:
            return None
        return f"its process ({owner.get('host')} pid {owner.get('pid')}) ended without finishing the request"
    d, r = owner.get("dag_id") or dag_id, owner.get("run_id") or run_id
    if dagrun_state is None or not d:
        return None
    try:
        state = dagrun_state(d, r)
    except Exception:  # noqa: BLE001 - Airflow unreachable: cannot tell, leave it
        return None
    state = getattr(state, "value", state)
    if state in FINAL_RUN_STATES:
        return f"its Airflow run {d} / {r} ended {state} without finishing the request"
    return None


def ambient_dagrun_state() -> DagRunState | None:
    """Inside an Airflow task: ask Airflow through the task's execution API; elsewhere None."""
    import sys

    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if runner is None or getattr(runner, "SUPERVISOR_COMMS", None) is None:
        return None
    return runner.RuntimeTaskInstance.get_dagrun_state


def airflow_metadata_state(dag_id: str, run_id: str) -> str | None:
    """A DAG run's state from Airflow's metadata database (the CLI, outside any task); None when
    Airflow is not configured here or does not know the run."""
    if "AIRFLOW_HOME" not in os.environ:  # the project's Airflow home (make airflow / make dag)
        from campus_sync import db

        home = db.home() / "airflow"
        if not home.is_dir():
            return None
        os.environ["AIRFLOW_HOME"] = str(home)
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    except Exception:  # noqa: BLE001 - no metadata database reachable from here
        return None
    return getattr(state, "value", state)
