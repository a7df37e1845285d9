"""The request history in the state database (Campus's DISBatchHistory).

One `sync.batch` row per request and one `sync.batch_result` row per object and district.
Statuses: gray while running; green/yellow/red by the error rule; `failed` when the load
rolled back; `not_run` when an ancestor failed so it was not attempted; `abandoned` when the
run died (see liveness.py). A batch is running, complete, failed or abandoned.

`sync.last_result` keeps the last finished resync result per district, object and school year,
apart from the requests (a trigger on `sync.batch_result`, include/sql/state_history.sql): Clear
History deletes requests, not the results that describe what is at the state now.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

RESULT_FIELDS = ("processed", "errors", "inserted", "updated", "deleted", "unchanged", "excluded")


def create_batch(conn: psycopg.Connection, *, kind: str, requested_by: str, school_year: str,
                 end_year: int, check_dependencies: bool, districts: Sequence[str],
                 objects: Sequence[str], dag_id: str | None = None, run_id: str | None = None,
                 details: dict | None = None) -> int:
    """Insert the request (idempotent per DAG run, so a retried first task reuses it), with its
    owner (liveness.current_owner: the process or the Airflow run), so it can be found dead."""
    from campus_sync.tools import liveness

    liveness.reap(conn, liveness.ambient_dagrun_state(), commit=False)  # close dead ones first
    row = conn.execute(
        """INSERT INTO sync.batch (kind, requested_by, school_year, end_year, check_dependencies,
                                   districts, objects, dag_id, run_id, details, owner)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (dag_id, run_id) DO UPDATE SET status = 'running'
           RETURNING id""",
        (kind, requested_by, school_year, end_year, check_dependencies, list(districts),
         list(objects), dag_id, run_id, json.dumps(details or {}),
         json.dumps(liveness.current_owner(dag_id, run_id))),
    ).fetchone()
    conn.commit()
    return int(row[0])


def record_start(conn: psycopg.Connection, batch_id: int, district_id: str, obj: str) -> None:
    conn.execute(
        """INSERT INTO sync.batch_result (batch_id, district_id, object, status, started_at)
           VALUES (%s, %s, %s, 'gray', now())
           ON CONFLICT (batch_id, district_id, object)
           DO UPDATE SET status = 'gray', started_at = now(), finished_at = NULL""",
        (batch_id, district_id, obj),
    )
    conn.commit()


def record_result(conn: psycopg.Connection, batch_id: int, result: dict[str, Any],
                  status: str | None = None, message: str | None = None) -> None:
    """Upsert one object's counts (from the engine's SyncResult.to_dict())."""
    values = {f: int(result.get(f, 0) or 0) for f in RESULT_FIELDS}
    conn.execute(
        """INSERT INTO sync.batch_result (batch_id, district_id, object, status, started_at,
                 finished_at, processed, errors, inserted, updated, deleted, unchanged, excluded,
                 error_reasons, message)
           VALUES (%(b)s, %(d)s, %(o)s, %(s)s, coalesce(%(st)s::timestamptz, now()),
                   coalesce(%(fi)s::timestamptz, now()), %(processed)s, %(errors)s, %(inserted)s,
                   %(updated)s, %(deleted)s, %(unchanged)s, %(excluded)s, %(r)s, %(m)s)
           ON CONFLICT (batch_id, district_id, object) DO UPDATE SET
                 status = EXCLUDED.status,
                 started_at = coalesce(sync.batch_result.started_at, EXCLUDED.started_at),
                 finished_at = EXCLUDED.finished_at, processed = EXCLUDED.processed,
                 errors = EXCLUDED.errors, inserted = EXCLUDED.inserted, updated = EXCLUDED.updated,
                 deleted = EXCLUDED.deleted, unchanged = EXCLUDED.unchanged,
                 excluded = EXCLUDED.excluded, error_reasons = EXCLUDED.error_reasons,
                 message = EXCLUDED.message""",
        dict(values, b=batch_id, d=result["district_id"], o=result["object"],
             s=status or result.get("status", "green"), st=result.get("started_at") or None,
             fi=result.get("finished_at") or None, r=json.dumps(result.get("error_reasons", {})),
             m=message),
    )
    conn.commit()


def finish_batch(conn: psycopg.Connection, batch_id: int, status: str, details: dict | None = None) -> None:
    conn.execute(
        "UPDATE sync.batch SET status = %s, completed_at = now(), details = details || %s WHERE id = %s",
        (status, json.dumps(details or {}), batch_id),
    )
    conn.commit()


def batches(conn: psycopg.Connection, limit: int = 20, batch_id: int | None = None) -> list[dict]:
    """Newest first, each with its per-object results (the `campus-sync history --json` shape)."""
    cur = conn.cursor(row_factory=dict_row)
    where, params = ("WHERE id = %s", [batch_id]) if batch_id is not None else ("", [])
    rows = cur.execute(
        f"""SELECT id, kind, status, requested_at, completed_at, requested_by, school_year, end_year,
                   check_dependencies, districts, objects, dag_id, run_id, details
              FROM sync.batch {where} ORDER BY requested_at DESC, id DESC LIMIT %s""",
        [*params, limit],
    ).fetchall()
    ids = [r["id"] for r in rows]
    results: dict[int, list[dict]] = {i: [] for i in ids}
    if ids:
        for r in cur.execute(
            """SELECT batch_id, district_id AS district, object, status, started_at, finished_at,
                      processed, errors, inserted, updated, deleted, unchanged, excluded, error_reasons
                 FROM sync.batch_result WHERE batch_id = ANY(%s)
                ORDER BY batch_id, district_id, started_at NULLS LAST, object""",
            [ids],
        ):
            results[r.pop("batch_id")].append(r)
    out = []
    for r in rows:
        r["results"] = results[r["id"]]
        out.append(r)
    return out


def last_results(conn: psycopg.Connection, district_id: str | None = None) -> list[dict]:
    """Last finished resync result per district, object and school year (the Resync tool's Last
    Resync / Results columns), from `sync.last_result`: kept when the history is cleared."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT district_id AS district, object, end_year, batch_id, status, started_at AS last_resync,
                  processed, errors, error_reasons
             FROM sync.last_result
            WHERE (%(d)s::text IS NULL OR district_id = %(d)s)
            ORDER BY district_id, object, end_year""",
        {"d": district_id},
    ).fetchall()


# Which finished requests Clear History takes: before a date or timestamp (`before`, NULL: any
# time), of one district (`district`, NULL: every district). Running requests are never cleared.
_CLEARABLE = ("b.status <> 'running'"
              " AND (%(before)s::timestamptz IS NULL OR b.requested_at < %(before)s::timestamptz)"
              " AND (%(district)s::text IS NULL OR %(district)s = ANY(b.districts))")
# A request of several districts, cleared for one of them, keeps the others' rows.
_SHARED = "%(district)s::text IS NOT NULL AND b.districts <> ARRAY[%(district)s::text]"


def clear_counts(conn: psycopg.Connection, before: Any = None, district: str | None = None) -> dict[str, int]:
    """What `clear` would delete: finished requests (made before `before`, a date or timestamp;
    of `district`, or every district) with their object and selective-ID rows.

    `requests`: requests deleted whole; `shared_requests`: requests of several districts that
    lose only `district`'s rows (and stop listing it); the row counts are of `district` only.
    Running requests are never cleared; the Resync view's last result per object stays
    (sync.last_result)."""
    params = {"before": before, "district": district}
    row = conn.execute(
        f"""SELECT count(*) FILTER (WHERE NOT ({_SHARED})),
                   count(*) FILTER (WHERE {_SHARED}),
                   coalesce(sum((SELECT count(*) FROM sync.batch_result r WHERE r.batch_id = b.id
                                    AND (%(district)s::text IS NULL OR r.district_id = %(district)s))), 0),
                   coalesce(sum((SELECT count(*) FROM sync.selective_key k WHERE k.batch_id = b.id
                                    AND (%(district)s::text IS NULL OR k.district_id = %(district)s))), 0)
              FROM sync.batch b WHERE {_CLEARABLE}""", params).fetchone()
    return {"requests": int(row[0]), "shared_requests": int(row[1]), "object_results": int(row[2]),
            "id_results": int(row[3])}


def clear(conn: psycopg.Connection, before: Any = None, district: str | None = None) -> dict[str, int]:
    """Clear History: delete finished requests (and, by cascade, their result rows), optionally only
    those made before `before` and only `district`'s (see `clear_counts`). Only history rows are
    deleted, never synced data nor the last result per object. Returns the counts deleted."""
    params = {"before": before, "district": district}
    with conn.transaction():
        # the rows counted are the rows deleted: no request finishes or starts in between
        conn.execute("LOCK TABLE sync.batch IN SHARE ROW EXCLUSIVE MODE")
        counts = clear_counts(conn, before, district)
        if district is not None:
            shared = [r[0] for r in conn.execute(
                f"SELECT b.id FROM sync.batch b WHERE {_CLEARABLE} AND {_SHARED} ORDER BY b.id", params)]
            if shared:
                conn.execute("DELETE FROM sync.batch_result WHERE batch_id = ANY(%s) AND district_id = %s",
                             (shared, district))
                conn.execute("DELETE FROM sync.selective_key WHERE batch_id = ANY(%s) AND district_id = %s",
                             (shared, district))
                conn.execute(
                    "UPDATE sync.batch SET districts = array_remove(districts, %(d)s),"
                    " details = details || jsonb_build_object('cleared_districts',"
                    " coalesce(details->'cleared_districts', '[]'::jsonb) || to_jsonb(%(d)s::text))"
                    " WHERE id = ANY(%(ids)s)", {"d": district, "ids": shared})
        counts["requests"] = conn.execute(
            f"DELETE FROM sync.batch b WHERE {_CLEARABLE} AND NOT ({_SHARED})", params).rowcount
    return counts
