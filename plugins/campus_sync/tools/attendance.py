"""The district's Attendance Aggregation Refresh, run before AttDayAggregation syncs.

A district's nightly attendance job aggregates only the prior day's changes, so backdated
attendance reaches AttDayAggregation only when the district runs its Attendance Aggregation
Refresh; "if both tools are used ... Attendance Aggregation Refresh should be run first, followed
by the Resync State Data tool". So whenever AttDayAggregation is in a resync plan, each district
runs the refresh first, as its own task (`AttendanceAggregationRefresh`) with its own history row
(processed = aggregate rows recomputed); a district whose refresh fails does not sync stale
aggregates (AttDayAggregation is recorded `not_run` with the reason).

The statement is the deployment's (`attendance_refresh.sql` in the config file, default the
demo's `campus.refresh_attendance_aggregation`, include/sql/demo/attendance_refresh.sql). It runs
at the district in one transaction with bound parameters only (`%(end_year)s`,
`%(district_id)s`). Plain Python: the Airflow side is in dagbuild.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from campus_sync import config, paths  # light: dagbuild imports this at DAG parse time

REFRESH = "AttendanceAggregationRefresh"  # the task id and the history row's object
AGGREGATE = "AttDayAggregation"  # the object the refresh feeds
PRESET_OBJECTS = ("AttDayAggregation", "AttendanceExcuse")  # Campus's attendance resync: what the attendance resync syncs
PARAM = "attendance_refresh"  # per-run switch (a DAG param, default on)
NOT_RUN_MESSAGE = ("not synced: the district's attendance aggregation refresh failed, so its aggregates "
                   "may be stale (see AttendanceAggregationRefresh)")
OFF_MESSAGE = "not run: turned off for this request (param attendance_refresh = false)"
COUNT_COLUMNS = {"inserted": "inserted", "updated": "updated", "deleted": "deleted"}


class RefreshError(RuntimeError):
    """The refresh statement failed at the district (not a lost connection): do not retry."""


def demo_routine_sql() -> str:
    """The demo districts' refresh routine (CREATE OR REPLACE FUNCTION ...)."""
    return (paths.sql_dir() / "demo" / "attendance_refresh.sql").read_text(encoding="utf-8")


def in_plan(objects) -> bool:
    return AGGREGATE in objects


def preset_objects(state: str, graph) -> list[str]:
    """The attendance resync's objects the deployment's state syncs (empty: no attendance preset)."""
    return [o for o in PRESET_OBJECTS if o in graph and graph.spec(o).applies_to(state)]


def _counts(cur) -> dict[str, int]:
    """Read the statement's report: one row whose `recomputed`/`rows_recomputed` column (else the
    first column) is the rows recomputed, plus optional inserted/updated/deleted columns; a single
    record value (`SELECT f(...)` of a function returning a row) is read by position in that
    order. A statement that returns no rows (CALL, UPDATE ...) reports its rowcount."""
    if cur.description is None:
        return {"recomputed": max(cur.rowcount, 0)}
    row = cur.fetchone()
    if row is None:
        return {"recomputed": 0}
    names = [c.name.lower().removeprefix("rows_") for c in cur.description]
    values = dict(zip(names, row))
    if len(row) == 1 and isinstance(row[0], (tuple, list)):  # `SELECT f(...)` of a row-returning f
        row = tuple(row[0])
        values = dict(zip(("recomputed", *COUNT_COLUMNS), row))
    out: dict[str, int] = {}
    first = values.get("recomputed", row[0])
    for key, value in [("recomputed", first)] + [(k, values.get(k)) for k in COUNT_COLUMNS]:
        if value is None:
            continue
        try:
            out[key] = int(value)
        except (TypeError, ValueError):
            raise RefreshError(f"the refresh statement reported {key} = {value!r}, not a row count") from None
    if "recomputed" not in out:
        raise RefreshError("the refresh statement reported no row count (NULL)")
    return out


def refresh(dsn: str, statement: str, *, end_year: int, district_id: str) -> dict[str, int]:
    """Run the refresh statement at the district in one transaction; return its counts."""
    import psycopg

    try:
        with psycopg.connect(dsn) as conn:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(statement, {"end_year": int(end_year), "district_id": district_id})
                return _counts(cur)
    except psycopg.OperationalError:
        raise  # lost connection, server gone: transient, the task retries
    except psycopg.Error as exc:
        raise RefreshError(f"attendance aggregation refresh failed at district {district_id}: "
                           f"{type(exc).__name__}: {str(exc).strip()}") from None


def run_refresh(unit: dict[str, Any], *, requested: bool = True) -> dict[str, Any] | None:
    """The task: refresh one district for the request's school year and record its history row.

    Returns the result (the task's XCom), or None when it does not run: AttDayAggregation is not
    in the request, or the run turned it off (then a `not_run` row says so). Raises after
    recording a `failed` row when the statement fails.
    """
    import psycopg

    from campus_sync import db
    from campus_sync.tools import history

    if not in_plan(unit["objects"]):
        return None
    cfg = config.load()
    district = cfg.district(unit["district_id"])
    sdsn = db.dsn(cfg.state_conn_id, "the state database")
    batch_id = unit["batch_id"]
    base = {"district_id": district.id, "object": REFRESH}
    if not requested or not cfg.attendance_refresh.enabled:
        why = OFF_MESSAGE if not requested else "not run: the deployment has no refresh (attendance_refresh: false)"
        with psycopg.connect(sdsn) as conn:
            history.record_result(conn, batch_id, base, status="not_run", message=why)
        return None
    with psycopg.connect(sdsn) as conn:
        history.record_start(conn, batch_id, district.id, REFRESH)
    started = dt.datetime.now(dt.timezone.utc)
    try:
        counts = refresh(db.dsn(district.conn_id, f"district {district.id}"), cfg.attendance_refresh.sql,
                         end_year=int(unit["end_year"]), district_id=district.id)
    except Exception as exc:
        with psycopg.connect(sdsn) as conn:
            history.record_result(conn, batch_id, {**base, "started_at": started.isoformat()},
                                  status="failed", message=str(exc)[:2000])
        raise
    changed = sum(counts.get(k, 0) for k in COUNT_COLUMNS)
    result = {
        **base,
        "processed": counts["recomputed"],
        "inserted": counts.get("inserted", 0),
        "updated": counts.get("updated", 0),
        "deleted": counts.get("deleted", 0),
        "unchanged": max(counts["recomputed"] - counts.get("inserted", 0) - counts.get("updated", 0), 0)
        if set(COUNT_COLUMNS) <= set(counts) else 0,
        "errors": 0,
        "status": "green",
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "end_year": int(unit["end_year"]),
        "changed": changed,
        "message": f"recomputed {counts['recomputed']} aggregate rows ({changed} changed) for school year "
                   f"{int(unit['end_year']) - 1}-{str(unit['end_year'])[2:]}",
    }
    with psycopg.connect(sdsn) as conn:
        history.record_result(conn, batch_id, result, message=result["message"])
    return result


def not_run_message(name: str, idx: int, outcomes: dict) -> str | None:
    """Why AttDayAggregation of district `idx` did not run, when its refresh failed (else None)."""
    if name == AGGREGATE and (outcomes.get((REFRESH, idx)) or (None,))[0] == "failed":
        return NOT_RUN_MESSAGE
    return None
