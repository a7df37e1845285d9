"""What the DAGs' tasks do, as plain functions over the engine and history.

The DAG files only wire these together; Airflow specifics (skip/fail exceptions, context) stay
in `dagbuild`. Each function is idempotent, so an Airflow retry is safe.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from campus_sync import config, db, hierarchy
from campus_sync.tools import alerts
from campus_sync.tools import attendance
from campus_sync.engine import sync as engine
from campus_sync.tools import history
from campus_sync.tools import requests
from campus_sync.engine import schema

log = logging.getLogger(__name__)


def state_dsn(cfg: config.Config | None = None) -> str:
    cfg = cfg or config.load()
    return db.dsn(cfg.state_conn_id, "the state database")


def open_state(cfg: config.Config | None = None) -> psycopg.Connection:
    """A connection to the state database with the schema in place."""
    conn = psycopg.connect(state_dsn(cfg))
    schema.ensure_state_schema(conn, hierarchy.load())
    return conn


def start_request(params: dict, *, kind: str, user: str, dag_id: str, run_id: str) -> list[dict]:
    """Validate the request, record the batch, return one work unit per district (for .expand)."""
    cfg = config.load()
    graph = hierarchy.load()
    req = requests.build(graph, cfg, params, kind=kind, user=user)  # refuses before any write
    with open_state(cfg) as conn:
        if req.kind == "state_request":  # uncommitted: create_batch's commit writes both, or neither
            alerts.add_state_resync_requested(conn, req.districts, end_year=req.end_year,
                                              dag_id=dag_id, run_id=run_id)
        batch_id = history.create_batch(
            conn, kind=req.kind, requested_by=req.requested_by, school_year=req.school_year,
            end_year=req.end_year, check_dependencies=req.check_dependencies,
            districts=req.districts, objects=req.objects, dag_id=dag_id, run_id=run_id,
            details={"requested": list(req.requested)},
        )
    return [{"batch_id": batch_id, "district_id": d, "label": cfg.district(d).label, "objects": list(req.objects),
             "end_year": req.end_year, "school_year": req.school_year,
             "confirm_deletes": req.confirm_deletes} for d in req.districts]


def abandon_request(dag_id: str, run_id: str, message: str) -> int | None:
    """Close the run's batch as failed when start_request wrote it but did not hand out work.

    A refused request writes no batch, so there is usually nothing to close; returns the
    batch id closed, if any (the request never stays `running`).
    """
    with psycopg.connect(state_dsn()) as conn:
        row = conn.execute("SELECT id FROM sync.batch WHERE dag_id = %s AND run_id = %s AND status = 'running'",
                           (dag_id, run_id)).fetchone()
        if row is None:
            return None
        history.finish_batch(conn, row[0], "failed", {"error": message})
    return int(row[0])


def run_object(name: str, unit: dict) -> dict[str, Any]:
    """Sync one object for one district and record it; raises on failure (after recording)."""
    cfg = config.load()
    graph = hierarchy.load()
    district = cfg.district(unit["district_id"])
    sdsn = state_dsn(cfg)
    source = db.dsn(district.conn_id, f"district {district.id}")
    guard = engine.DeleteGuard(max_share=cfg.max_delete_share, min_rows=cfg.delete_guard_min_rows,
                               confirmed=bool(unit.get("confirm_deletes")))
    with psycopg.connect(sdsn) as conn:
        history.record_start(conn, unit["batch_id"], district.id, name)
    try:
        result = engine.sync_object(
            graph, name, district_id=district.id, source_dsn=source,
            state_dsn=sdsn, scope=engine.Scope(end_year=int(unit["end_year"])), guard=guard,
        )
    except Exception as exc:
        with psycopg.connect(sdsn) as conn:
            history.record_result(conn, unit["batch_id"], {"district_id": district.id, "object": name},
                                  status="failed", message=str(exc)[:2000])
        raise
    with psycopg.connect(sdsn) as conn:
        history.record_result(conn, unit["batch_id"], result.to_dict())
    return result.to_dict()


LEFT_WITHOUT_RESULT = "its task ended without recording a result"


def finish_request(units: list[dict], outcomes: dict[tuple[str, int], tuple[str | None, dict | None]]) -> dict:
    """Write every object's final row and close the batch (after every object task has ended).

    `outcomes` maps (object, map index) to (task state, XCom result). Returns a summary with
    the failed and not-run objects so the caller can fail the run.
    """
    if not units:
        return {"status": "complete", "failed": [], "not_run": []}
    batch_id = units[0]["batch_id"]
    failed, not_run = [], []
    with psycopg.connect(state_dsn()) as conn:
        for (name, idx), (state, result) in sorted(outcomes.items()):
            district = units[idx]["district_id"]
            if result:
                history.record_result(conn, batch_id, result, message=result.get("message"))
            elif state == "failed":
                failed.append(f"{district}:{name}")
                row = conn.execute("SELECT status FROM sync.batch_result WHERE batch_id = %s AND "
                                   "district_id = %s AND object = %s", (batch_id, district, name)).fetchone()
                if not row or row[0] != "failed":
                    history.record_result(conn, batch_id, {"district_id": district, "object": name},
                                          status="failed", message="task failed")
            elif state == "upstream_failed" and name in units[idx]["objects"]:
                not_run.append(f"{district}:{name}")
                history.record_result(conn, batch_id, {"district_id": district, "object": name},
                                      status="not_run", message=attendance.not_run_message(name, idx, outcomes)
                                      or "an ancestor object failed")
        # Every object task has ended (finish_request runs after all of them), so a row still gray
        # is one whose task died without a word (e.g. its instance was removed): it has an end too.
        left = conn.execute("UPDATE sync.batch_result SET status = 'abandoned', finished_at = now(),"
                            " message = coalesce(message, %s) WHERE batch_id = %s AND status = 'gray'"
                            " RETURNING district_id, object", (LEFT_WITHOUT_RESULT, batch_id)).fetchall()
        failed.extend(f"{d}:{o}" for d, o in sorted(left))
        status = "failed" if failed else "complete"
        history.finish_batch(conn, batch_id, status, {"failed": failed, "not_run": not_run})
    return {"batch_id": batch_id, "status": status, "failed": failed, "not_run": not_run}


# ----------------------------------------------------------------- one task per object
# The weekly full resync's `per_object` shape: one Airflow task per object syncs that object for
# every district of the request, `districts_in_parallel` at a time. Per-district outcomes are the
# task's XCom ({district id: {"status": ..., "message": ...}}); the history rows are written as
# each district ends, exactly as the one-task-per-district shape writes them.
FAILED, NOT_RUN = "failed", "not_run"


def blocked_districts(upstream: dict[str, dict[str, dict] | None]) -> dict[str, str]:
    """District id → why this object cannot run there: an upstream object failed or did not run
    for that district. `upstream` maps each upstream task to its XCom (None: skipped, not planned)."""
    blocked: dict[str, str] = {}
    for up, outcomes in sorted(upstream.items()):
        for district, outcome in sorted((outcomes or {}).items()):
            status = (outcome or {}).get("status")
            if status in (FAILED, NOT_RUN) and district not in blocked:
                blocked[district] = f"not run: {up} {'failed' if status == FAILED else 'did not run'} for this district"
    return blocked


def run_for_districts(name: str, units: list[dict], blocked: dict[str, str], parallelism: int,
                      run=None, retry: config.ConnectionRetries | None = None) -> dict[str, dict]:
    """Run `run(unit)` (default: sync object `name`) for every district of the request that is not
    `blocked`, at most `parallelism` at once; record a not_run row for each blocked one.

    One district's failure is its own: it is recorded (by `run`) and returned as failed, and the
    other districts go on. A district whose connection failed (`engine.connection_failed`) is
    tried again here, up to `retry.retries` times (none without `retry`), after `retry.wait(n)`
    seconds: only that district, on fresh connections; the history row says so. Returns
    {district id: {"status", "message"?, "tries"? (when more than one)}} in district order.
    """
    from concurrent.futures import ThreadPoolExecutor

    run = run or (lambda unit: run_object(name, unit))
    retries = retry.retries if retry else 0
    units = sorted(units, key=lambda u: u["district_id"])
    out: dict[str, dict] = {}
    todo = [u for u in units if u["district_id"] not in blocked]
    skipped = [u for u in units if u["district_id"] in blocked]
    if skipped:
        with psycopg.connect(state_dsn()) as conn:
            for unit in skipped:
                why = blocked[unit["district_id"]]
                history.record_result(conn, unit["batch_id"], {"district_id": unit["district_id"], "object": name},
                                      status=NOT_RUN, message=why)
                out[unit["district_id"]] = {"status": NOT_RUN, "message": why}

    def one(unit: dict) -> tuple[str, dict]:
        district, tries, attempt, failure = unit["district_id"], retries + 1, 1, ""
        while True:
            try:
                result = run(unit)
                break
            except Exception as exc:  # recorded in the history by `run`; the other districts go on
                again = engine.connection_failed(exc)
                if not again or attempt == tries:
                    return district, _failed(unit, name, exc, again, attempt)
                failure, wait = " ".join(str(exc).split()), retry.wait(attempt)  # libpq's lines as one
                log.warning("%s, district %s: connection failed on try %d of %d; retrying in %g s: %s",
                            name, district, attempt, tries, wait, failure)
                _note(unit, name, f"connection failed on try {attempt} of {tries}, retrying in {wait:g} s: {failure}",
                      status="gray")
                time.sleep(wait)
                attempt += 1
        if result is None:  # the attendance refresh turned off for this run: nothing to wait for
            return district, {"status": "skipped"}
        outcome = {"status": str(result.get("status") or "done")}
        if attempt > 1:
            outcome["tries"] = attempt
            _note(unit, name, f"succeeded on try {attempt} of {tries} (connection failed before: {failure})",
                  append=True)
        return district, outcome

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(todo))),
                                thread_name_prefix=f"sync-{name}") as pool:
            for district, outcome in pool.map(one, todo):
                out[district] = outcome
    return dict(sorted(out.items()))


def _failed(unit: dict, name: str, exc: Exception, connection: bool, tries: int) -> dict:
    """A district's failed outcome; `transient` when an Airflow retry of the whole task may help
    should every district fail alike (a connection, or an error that is not the engine's refusal)."""
    outcome: dict[str, Any] = {"status": FAILED, "message": f"{type(exc).__name__}: {exc}"[:1000]}
    if connection and tries > 1:
        outcome["tries"] = tries
        _note(unit, name, f"(connection failed on each of {tries} tries)", append=True)
    if connection or not isinstance(exc, (engine.SyncError, attendance.RefreshError)):
        outcome["transient"] = True
    return outcome


def _note(unit: dict, name: str, message: str, status: str | None = None, append: bool = False) -> None:
    """Say in a district's history row what its retries did: its message replaced (and its status
    set, e.g. back to gray while a retry waits) or, `append`, added to. Best effort: the state
    may be the database whose connection failed."""
    try:
        with psycopg.connect(state_dsn()) as conn:
            conn.execute(
                "UPDATE sync.batch_result SET status = coalesce(%s, status), message = left(CASE WHEN %s"
                " THEN concat_ws(' ', message, %s::text) ELSE %s END, 2000)"
                " WHERE batch_id = %s AND district_id = %s AND object = %s",
                (status, append, message, message, unit["batch_id"], unit["district_id"], name))
    except psycopg.Error as exc:
        log.warning("could not note the retries of %s, district %s, in the history: %s", name, unit["district_id"], exc)


def finish_request_per_object(units: list[dict], outcomes: dict[str, tuple[str | None, dict | None]]) -> dict:
    """Close the batch of a one-task-per-object run. `outcomes` maps each planned object to (task
    state, XCom): a district's failure is in the XCom; a task that failed outright (every district
    failed) or never ran has no XCom, and then its state speaks for every district."""
    if not units:
        return {"status": "complete", "failed": [], "not_run": []}
    batch_id = units[0]["batch_id"]
    failed, not_run = [], []
    with psycopg.connect(state_dsn()) as conn:
        for name, (state, result) in sorted(outcomes.items()):
            for unit in sorted(units, key=lambda u: u["district_id"]):
                district = unit["district_id"]
                if name not in unit["objects"] and name != attendance.REFRESH:
                    continue
                outcome = (result or {}).get(district)
                status = (outcome or {}).get("status")
                if status == FAILED or (outcome is None and state == "failed"):
                    failed.append(f"{district}:{name}")
                    row = conn.execute("SELECT status FROM sync.batch_result WHERE batch_id = %s AND "
                                       "district_id = %s AND object = %s", (batch_id, district, name)).fetchone()
                    if not row or row[0] != FAILED:
                        history.record_result(conn, batch_id, {"district_id": district, "object": name},
                                              status=FAILED, message="task failed")
                elif status == NOT_RUN:
                    if name != attendance.REFRESH:
                        not_run.append(f"{district}:{name}")
                elif outcome is None and state == "upstream_failed" and name != attendance.REFRESH:
                    not_run.append(f"{district}:{name}")
                    history.record_result(conn, batch_id, {"district_id": district, "object": name},
                                          status=NOT_RUN, message="not run: an ancestor object failed in every district")
        left = conn.execute("UPDATE sync.batch_result SET status = 'abandoned', finished_at = now(),"
                            " message = coalesce(message, %s) WHERE batch_id = %s AND status = 'gray'"
                            " RETURNING district_id, object", (LEFT_WITHOUT_RESULT, batch_id)).fetchall()
        failed.extend(f"{d}:{o}" for d, o in sorted(left))
        status = "failed" if failed else "complete"
        history.finish_batch(conn, batch_id, status, {"failed": failed, "not_run": not_run})
    return {"batch_id": batch_id, "status": status, "failed": failed, "not_run": not_run}
