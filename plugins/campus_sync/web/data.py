"""What the Resync State Data page reads and writes, as plain functions over a psycopg connection.

No Airflow and no web framework here, so every query is tested on real PostgreSQL on its own
(tests/web/test_data.py) and timed at state scale (`campus-sync bench web`). Every query is
parameterised (nothing is built from input) and reads an index range: see include/sql/state_web.sql.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from campus_sync import config as config_mod
from campus_sync.tools import alerts
from campus_sync.engine import sync as engine
from campus_sync.tools import history
from campus_sync.tools import reasons
from campus_sync.tools import verify
from campus_sync.hierarchy import Hierarchy

# Kinds that count as a "resync" of an object (the Resync view's Last Resync column); a selective
# sync touches only some records and a verification writes no batch_result rows.
RESYNC_KINDS = ("full", "partial", "state_request")
KINDS = ("full", "partial", "state_request", "selective", "verification", "edfi_resync")
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000  # OFFSET stays far inside bigint; beyond it the page answers 422


# ------------------------------------------------------------------------------ Resync view
def object_catalog(graph: Hierarchy, cfg: config_mod.Config) -> dict[str, Any]:
    """Per school year, the objects offered (hierarchy order) and each object's ancestors, so the
    page can tick ancestors on screen exactly as the planner adds them (Check dependencies)."""
    years = {}
    for year in ("current", "previous", "next"):
        offered = graph.enabled(cfg.state, year)
        offered_set = set(offered)
        years[year] = {
            "end_year": cfg.end_year(year),
            "label": alerts.school_year_label(cfg.end_year(year)),
            "objects": [{"name": n, "description": graph.spec(n).description,
                         "ancestors": [a for a in graph.ancestors(n) if a in offered_set]}
                        for n in offered],
        }
    from campus_sync.tools import selective

    chosen = [o for o in selective.selective_objects(graph) if graph.spec(o).applies_to(cfg.state)]
    return {"state": cfg.state, "years": years,
            "selective": [{"name": o, "key": graph.spec(o).selective_key} for o in chosen],
            "districts": [{"id": d.id, "name": d.name, "label": d.label} for d in cfg.districts]}


def resync_rows(conn: psycopg.Connection, graph: Hierarchy, cfg: config_mod.Config, district_id: str,
                school_year: str = "current") -> list[dict]:
    """One row per object offered for `school_year`, in hierarchy (run) order, with the latest
    resync result of `district_id` for that year: Last Resync, Processed, Errors, reasons, status.

    The newer of the history's latest row (a resync in progress shows gray) and the kept last
    result (`sync.last_result`, which Clear History leaves alone). One index probe each per
    object (batch_result_last_idx, the last_result key), so the cost does not grow with history.
    """
    cfg.district(district_id)  # unknown district: ConfigError naming it
    objects = list(graph.enabled(cfg.state, school_year))
    rows = conn.cursor(row_factory=dict_row).execute(
        """SELECT o.object, r.batch_id, r.status, r.started_at AS last_resync, r.finished_at,
                  r.processed, r.errors, r.error_reasons, r.message, r.kind, r.requested_by
             FROM unnest(%(objects)s::text[]) WITH ORDINALITY AS o(object, ord)
             LEFT JOIN LATERAL (
                  SELECT c.* FROM (
                      (SELECT r.batch_id, r.status, r.started_at, r.finished_at, r.processed, r.errors,
                              r.error_reasons, r.message, b.kind, b.requested_by
                         FROM sync.batch_result r JOIN sync.batch b ON b.id = r.batch_id
                        WHERE r.district_id = %(d)s AND r.object = o.object AND r.started_at IS NOT NULL
                          AND b.end_year = %(y)s AND b.kind = ANY(%(kinds)s)
                        ORDER BY r.started_at DESC LIMIT 1)
                      UNION ALL
                      (SELECT l.batch_id, l.status, l.started_at, l.finished_at, l.processed, l.errors,
                              l.error_reasons, l.message, l.kind, l.requested_by
                         FROM sync.last_result l
                        WHERE l.district_id = %(d)s AND l.object = o.object AND l.end_year = %(y)s)
                  ) c ORDER BY c.started_at DESC LIMIT 1) r ON true
            ORDER BY o.ord""",
        {"objects": objects, "d": district_id, "y": cfg.end_year(school_year), "kinds": list(RESYNC_KINDS)},
    ).fetchall()
    for r in rows:
        r["status"] = r["status"] or "none"
        r["error_reasons"] = reasons.with_text(r["error_reasons"])
        r["ancestors"] = list(graph.ancestors(r["object"]))
        r["refused"] = refusal(r["status"], r["message"])
    return rows


# ------------------------------------------------------------------------------ Delete guard
# The engine's guards refuse a resync that would delete more than the configured share of an
# object's state rows, or empty it; the refused result's message carries the counts and names
# the override (engine.CONFIRM_HINT). The page reads the counts back from it to offer the
# override to a user with Delete rights.
_MASS_DELETE = re.compile(r"would delete (\d+) of the (\d+) rows the state holds")
_EMPTY_SOURCE = re.compile(r"has no accepted \S+ rows \(\d+ in scope, [^)]*\) but the state holds (\d+)")


def refusal(status: str | None, message: str | None) -> dict[str, Any] | None:
    """{"guard", "deleted", "held"} when a failed result was refused by a delete guard, else None."""
    if status != "failed" or not message or engine.CONFIRM_HINT not in message:
        return None
    if m := _MASS_DELETE.search(message):
        return {"guard": "mass_delete", "deleted": int(m.group(1)), "held": int(m.group(2))}
    if m := _EMPTY_SOURCE.search(message):
        return {"guard": "empty_source", "deleted": int(m.group(1)), "held": int(m.group(1))}
    return None


def refusals(conn: psycopg.Connection, batch_id: int) -> dict[str, Any] | None:
    """A request's results the delete guards refused (every district), with the counts, and the
    reruns that confirm exactly those deletes: only the refused objects, for the districts that
    refused them (grouped when several districts refused the same objects), without adding parents
    (they ran in the refused request), `confirm_deletes` set. None when there is no such request."""
    cur = conn.cursor(row_factory=dict_row)
    batch = cur.execute("SELECT id, kind, school_year, objects FROM sync.batch WHERE id = %s",
                        (batch_id,)).fetchone()
    if batch is None:
        return None
    order = {n: i for i, n in enumerate(batch["objects"] or [])}
    refused = []
    for r in cur.execute("SELECT district_id, object, status, message FROM sync.batch_result"
                         " WHERE batch_id = %s AND status = 'failed' ORDER BY district_id", (batch_id,)):
        found = refusal(r["status"], r["message"])
        if found:
            refused.append({"district_id": r["district_id"], "object": r["object"], **found})
    refused.sort(key=lambda x: (x["district_id"], order.get(x["object"], 10**6), x["object"]))
    by_district: dict[str, list[str]] = {}
    for x in refused:
        by_district.setdefault(x["district_id"], []).append(x["object"])
    groups: dict[tuple[str, ...], list[str]] = {}
    for district, objects in sorted(by_district.items()):
        groups.setdefault(tuple(objects), []).append(district)
    reruns = [{"objects": list(objects), "districts": districts, "check_dependencies": False,
               "school_year": batch["school_year"],
               "requested_by": "state" if batch["kind"] == "state_request" else "district",
               "confirm_deletes": True} for objects, districts in sorted(groups.items(), key=lambda g: g[1])]
    return {"batch_id": batch["id"], "kind": batch["kind"], "school_year": batch["school_year"],
            "refused": refused, "reruns": reruns}


# ------------------------------------------------------------------------------ History
def history_page(conn: psycopg.Connection, *, page: int = 1, per_page: int = 25,
                 kind: str | None = None, district_id: str | None = None) -> dict[str, Any]:
    """Requests newest first, one page (index batch_requested_idx / batch_kind_requested_idx)."""
    page = max(1, int(page))
    per_page = min(MAX_PER_PAGE, max(1, int(per_page)))
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    where = "(%(kind)s::text IS NULL OR kind = %(kind)s) AND (%(d)s::text IS NULL OR %(d)s = ANY(districts))"
    params = {"kind": kind, "d": district_id, "n": per_page, "off": (page - 1) * per_page}
    total = conn.execute(f"SELECT count(*) FROM sync.batch WHERE {where}", params).fetchone()[0]
    rows = conn.cursor(row_factory=dict_row).execute(
        f"""SELECT id, kind, status, requested_by, requested_at, completed_at, school_year, end_year,
                   check_dependencies, districts, objects, dag_id, run_id, details
              FROM sync.batch WHERE {where}
             ORDER BY requested_at DESC, id DESC LIMIT %(n)s OFFSET %(off)s""", params).fetchall()
    for r in rows:
        r["records"] = (r["details"] or {}).get("records")
        r["requested"] = (r["details"] or {}).get("requested") or r["objects"]
    return {"page": page, "per_page": per_page, "total": int(total),
            "pages": max(1, -(-int(total) // per_page)), "items": rows}


def batch_detail(conn: psycopg.Connection, graph: Hierarchy, batch_id: int,
                 district_id: str | None = None) -> dict[str, Any] | None:
    """One request with its per-object results (one district at a time: a full state resync has
    170 x 60 rows), objects in hierarchy order."""
    cur = conn.cursor(row_factory=dict_row)
    batch = cur.execute(
        """SELECT id, kind, status, requested_by, requested_at, completed_at, school_year, end_year,
                  check_dependencies, districts, objects, dag_id, run_id, details
             FROM sync.batch WHERE id = %s""", (batch_id,)).fetchone()
    if batch is None:
        return None
    districts = list(batch["districts"] or [])
    district = district_id if district_id in districts else (districts[0] if districts else None)
    order = {n: i for i, n in enumerate(graph.names)}
    results = cur.execute(
        """SELECT object, status, started_at, finished_at, processed, errors, inserted, updated,
                  deleted, unchanged, excluded, error_reasons, message
             FROM sync.batch_result WHERE batch_id = %s AND district_id = %s""",
        (batch_id, district)).fetchall()
    results.sort(key=lambda r: (order.get(r["object"], 10**6), r["object"]))
    for r in results:
        r["error_reasons"] = reasons.with_text(r["error_reasons"])
        r["refused"] = refusal(r["status"], r["message"])
    batch["district"] = district
    batch["results"] = results
    return batch


def batch_by_run(conn: psycopg.Connection, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The request a DAG run recorded, with its progress (objects done / total) and the results
    the delete guards refused (with their counts), or None yet."""
    row = conn.cursor(row_factory=dict_row).execute(
        """SELECT b.id, b.kind, b.status, b.districts, b.objects, b.details,
                  (SELECT count(*) FROM sync.batch_result r WHERE r.batch_id = b.id AND r.status <> 'gray') AS done,
                  (SELECT count(*) FROM sync.batch_result r WHERE r.batch_id = b.id AND r.status = 'gray') AS running
             FROM sync.batch b WHERE b.dag_id = %s AND b.run_id = %s""", (dag_id, run_id)).fetchone()
    if row is None:
        return None
    row["total"] = len(row["districts"] or []) * len(row["objects"] or [])
    if row["kind"] == "selective":
        row["total"] = len(row["objects"] or [])
    row["refused"] = refusals(conn, row["id"])["refused"]
    return row


def clear_preview(conn: psycopg.Connection, before: Any = None, district: str | None = None) -> dict[str, int]:
    """What Clear History would delete (same rule as `campus-sync history clear`), for `district`
    (None: every district) and requests made before `before`."""
    return history.clear_counts(conn, before, district)


def cutoff(conn: psycopg.Connection, before: Any) -> dt.datetime | None:
    """`before` as the state database reads it (a date: midnight in its time zone), with its offset."""
    return conn.execute("SELECT %s::timestamptz", (before,)).fetchone()[0] if before is not None else None


def clear_history(conn: psycopg.Connection, before: Any = None, district: str | None = None) -> dict[str, int]:
    """Clear History: exactly `campus-sync history clear` (finished requests only, never data, never
    the last result per object), optionally of one district and before a date."""
    return history.clear(conn, before, district)


# ------------------------------------------------------------------------------ Verification
def verification_overview(conn: psycopg.Connection, cfg: config_mod.Config) -> list[dict]:
    """Each configured district's latest Verification Summary: overall accuracy, distinct, errors.

    One index probe per district for its latest run (verification_result_latest_idx), then that
    run's rows by primary key: the cost does not grow with the number of stored runs.
    """
    rows = conn.cursor(row_factory=dict_row).execute(
        """SELECT d.district_id, l.run_id, sum(r.distinct_rows)::bigint AS distinct,
                  sum(r.total_errors)::bigint AS total_errors, max(r.verified_at) AS verified_at
             FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS d(district_id, ord)
             CROSS JOIN LATERAL (
                  SELECT v.run_id FROM sync.verification_result v WHERE v.district_id = d.district_id
                   ORDER BY v.verified_at DESC, v.run_id DESC LIMIT 1) l
             JOIN sync.verification_result r ON r.run_id = l.run_id AND r.district_id = d.district_id
            GROUP BY d.district_id, d.ord, l.run_id ORDER BY d.ord""",
        {"ids": list(cfg.district_ids)}).fetchall()
    names = {d.id: d.name for d in cfg.districts}
    for r in rows:
        r["name"] = names.get(r["district_id"], r["district_id"])
        r["overall_accuracy"] = verify.accuracy(int(r["distinct"]), int(r["total_errors"]))
    return rows


def verification(conn: psycopg.Connection, cfg: config_mod.Config, district_id: str | None = None) -> dict:
    """The latest stored Verification Summary (every district's overall accuracy) and, for
    `district_id`, its per-object rows and the sample of mismatched keys."""
    overview = verification_overview(conn, cfg)
    chosen = None
    if district_id and any(d["district_id"] == district_id for d in overview):
        found = verify.latest(conn, [district_id], cfg=cfg)["districts"]
        chosen = found[0] if found else None
    issues = verify.issues(conn, chosen["run_id"], chosen["district_id"]) if chosen else []
    end_year = None
    if overview:
        end_year = conn.execute("SELECT end_year FROM sync.verification_run WHERE id = %s",
                                (max(d["run_id"] for d in overview),)).fetchone()[0]
    return {"end_year": end_year, "label": alerts.school_year_label(end_year) if end_year else None,
            "districts": overview, "district": chosen, "issues": issues}


# ------------------------------------------------------------------------------ CSV
def _csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(columns))
    for col in frame.columns:
        if frame[col].map(lambda v: isinstance(v, (list, tuple))).any():
            frame[col] = frame[col].map(lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        elif frame[col].map(lambda v: isinstance(v, dt.datetime)).any():
            frame[col] = frame[col].map(lambda v: v.isoformat() if isinstance(v, dt.datetime) else v)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


HISTORY_CSV = ("id", "kind", "status", "requested_by", "requested_at", "completed_at", "school_year",
               "end_year", "check_dependencies", "districts", "requested", "objects", "records", "dag_id", "run_id")
RESULTS_CSV = ("object", "status", "started_at", "finished_at", "processed", "errors", "inserted",
               "updated", "deleted", "unchanged", "excluded", "error_reasons", "error_reason_text", "message")
VERIFICATION_CSV = ("district_id", "name", "overall_accuracy", "object", "accuracy", "verified_at", "distinct",
                    "at_district", "at_state", "refused", "missing", "extra", "different", "total_errors")


def history_csv(conn: psycopg.Connection, kind: str | None = None, district_id: str | None = None) -> str:
    """Every request (one row each), newest first."""
    items: list[dict] = []
    page = 1
    while True:
        got = history_page(conn, page=page, per_page=MAX_PER_PAGE, kind=kind, district_id=district_id)
        items += got["items"]
        if page >= got["pages"]:
            break
        page += 1
    return _csv(items, HISTORY_CSV)


def batch_csv(detail: dict) -> str:
    rows = [dict(r, error_reasons="; ".join(f"{k}={v}" for k, v, _ in r["error_reasons"]),
                 error_reason_text="; ".join(f"{k}: {t}" for k, _, t in r["error_reasons"] if t))
            for r in detail["results"]]
    return _csv(rows, RESULTS_CSV)


def verification_csv(conn: psycopg.Connection, cfg: config_mod.Config) -> str:
    """The latest summary of every district, one row per district and object."""
    summary = verify.latest(conn, cfg=cfg)
    rows = [dict(o, district_id=d["district_id"], name=d["name"], overall_accuracy=d["overall_accuracy"])
            for d in summary["districts"] for o in d["objects"]]
    return _csv(rows, VERIFICATION_CSV)
