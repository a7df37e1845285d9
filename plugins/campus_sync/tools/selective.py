"""Selective sync: resync chosen people or enrollments and the objects hanging off them.

Plain Python over the sync engine (no Airflow). A request names an object that has a
`selective_key` in the hierarchy (PersonIdentity by personID, Enrollment by enrollmentID), one
district and a list of IDs. It runs the object, then every descendant that carries the same key
column and is enabled for the configured state, in run order (parents first), each through
`engine.sync_object` with `Scope(key_column=..., keys=...)` in its own transaction: only rows with
those keys are loaded, updated or deleted, for the current school year where an object is tied to
one. Objects not tied to a school year are not filtered by year (see `engine.scope_filter`).

Every ID gets an outcome: successful when the district's extract of the selected object has a
row for it and the state accepted that row, else failed with a reason (`not found at district`,
`refused: <reason>`, `sync failed: ...`). An ID that matches nothing changes nothing. One
`selective` batch per request records the object, the keys and "Records: ok/total"; per-object
counts go to `sync.batch_result`, per-ID outcomes to `sync.selective_key`.

The steps are separate so the DAG runs each as a task; `run()` chains them for the CLI and for
the verification's heal.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from campus_sync import config as config_mod
from campus_sync import db
from campus_sync.engine import connections
from campus_sync.engine import sync as engine
from campus_sync.tools import history
from campus_sync.orchestration import tasks
from campus_sync.hierarchy import Hierarchy, ObjectSpec, UnknownObjectError
from campus_sync.hierarchy.model import YEAR_COLUMN
from campus_sync.tools.requests import RequestError  # noqa: F401 - re-exported
from campus_sync.tools.selective_input import (  # noqa: F401 - the form's parsing, re-exported
    MAX_ID, MAX_IDS, SEPARATORS, SelectiveError, parse_ids, selective_objects)
from campus_sync.engine.schema import STATE_SCHEMA, ident, table

KIND = "selective"
NOT_FOUND = "not found at district"


def plan(graph: Hierarchy, obj: str, state: str | None) -> tuple[str, ...]:
    """The object, then each descendant carrying its selective key column, enabled for `state`,
    in run order (so every parent runs before its children)."""
    spec = graph.spec(obj)
    column = spec.selective_key
    if not column:
        raise SelectiveError(f"object {obj!r} cannot be synced selectively; "
                             f"choose one of {', '.join(selective_objects(graph))}")
    enabled = set(graph.enabled(state))
    return (obj,) + tuple(n for n in graph.descendants(obj)
                          if n in enabled and column in graph.spec(n).column_names)


@dataclass(frozen=True)
class SelectiveRequest:
    object: str
    key_column: str
    keys: tuple[int, ...]
    district_id: str
    objects: tuple[str, ...]  # run order
    end_year: int
    requested_by: str

    def unit(self, batch_id: int) -> dict:
        """The JSON-able work description the DAG's tasks pass along (XCom)."""
        d = asdict(self)
        return dict(d, batch_id=batch_id, keys=list(self.keys), objects=list(self.objects))


def _district(cfg: config_mod.Config, raw: Any) -> str:
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if raw in (None, "") or not isinstance(raw, (str, int)):
        raise SelectiveError(f"choose one district: one of {', '.join(cfg.district_ids)}")
    d = str(raw).strip().split(" ", 1)[0]  # accept "0101 Abbott Independent" labels too
    if d not in cfg.district_ids:
        raise SelectiveError(f"unknown district {d!r}; configured: {', '.join(cfg.district_ids)}")
    return d


def build_request(graph: Hierarchy, cfg: config_mod.Config, params: dict, *, user: str) -> SelectiveRequest:
    """Validate the trigger form (object, ids, district); raise SelectiveError naming the problem."""
    raw_obj = params.get("object")
    choices = selective_objects(graph)
    if not isinstance(raw_obj, str) or not raw_obj.strip():
        raise SelectiveError(f"choose an object: one of {', '.join(choices)}")
    try:
        obj = graph.resolve(raw_obj.strip())
    except UnknownObjectError as exc:
        raise SelectiveError(str(exc)) from None
    if obj not in choices:
        raise SelectiveError(f"object {obj!r} cannot be synced selectively; choose one of {', '.join(choices)}")
    if not graph.spec(obj).applies_to(cfg.state):
        raise SelectiveError(f"object {obj!r} does not apply to state {cfg.state}")
    district = _district(cfg, params.get("district"))
    keys = parse_ids(params.get("ids"))
    return SelectiveRequest(object=obj, key_column=graph.spec(obj).selective_key, keys=keys,
                            district_id=district, objects=plan(graph, obj, cfg.state),
                            end_year=cfg.end_year("current"), requested_by=user)


# ------------------------------------------------------------------------------ steps
def _records(ok: int, total: int) -> dict:
    return {"records": f"{ok}/{total}", "records_ok": ok, "records_total": total}


def start(req: SelectiveRequest, *, dag_id: str | None = None, run_id: str | None = None,
          cfg: config_mod.Config | None = None) -> dict:
    """Record the `selective` batch (idempotent per DAG run); return the work unit."""
    cfg = cfg or config_mod.load()
    with tasks.open_state(cfg) as conn:
        batch_id = history.create_batch(
            conn, kind=KIND, requested_by=req.requested_by, school_year="current",
            end_year=req.end_year, check_dependencies=False, districts=[req.district_id],
            objects=req.objects, dag_id=dag_id, run_id=run_id,
            details={"object": req.object, "key_column": req.key_column, "keys": list(req.keys),
                     "district": req.district_id, **_records(0, len(req.keys))},
        )
    return req.unit(batch_id)


def _scope(unit: dict) -> engine.Scope:
    return engine.Scope(end_year=int(unit["end_year"]), key_column=unit["key_column"],
                        keys=tuple(int(k) for k in unit["keys"]))


def sync(unit: dict, graph: Hierarchy | None = None, cfg: config_mod.Config | None = None) -> dict:
    """Sync every planned object for the unit's keys, parents first, one transaction each.

    An object that fails (SyncError) is recorded `failed` and its planned descendants `not_run`;
    the others still run. Anything else, a lost or refused connection above all
    (`engine.connection_failed`), is recorded and re-raised, so an Airflow retry repeats the
    (idempotent) whole.
    """
    from campus_sync import hierarchy

    graph = graph or hierarchy.load()
    cfg = cfg or config_mod.load()
    district = cfg.district(unit["district_id"])
    sdsn, src = tasks.state_dsn(cfg), db.dsn(district.conn_id, f"district {district.id}")
    batch_id, scope = unit["batch_id"], _scope(unit)
    results, failed, not_run = [], [], []
    with psycopg.connect(sdsn) as conn, connections.reusing():  # one pair of connections for all
        for name in unit["objects"]:
            ref = {"district_id": district.id, "object": name}
            if any(a in failed for a in graph.ancestors(name)):
                not_run.append(name)
                history.record_result(conn, batch_id, ref, status="not_run", message="an ancestor object failed")
                continue
            history.record_start(conn, batch_id, district.id, name)
            try:
                result = engine.sync_object(graph, name, district_id=district.id, source_dsn=src,
                                            state_dsn=sdsn, scope=scope)
            except Exception as exc:
                history.record_result(conn, batch_id, ref, status="failed", message=str(exc)[:2000])
                if not isinstance(exc, engine.SyncError) or engine.connection_failed(exc):
                    raise
                failed.append(name)
                continue
            history.record_result(conn, batch_id, result.to_dict())
            results.append(result.to_dict())
    return {"batch_id": batch_id, "results": results, "failed": failed, "not_run": not_run}


@dataclass(frozen=True)
class KeyOutcome:
    key: int
    ok: bool
    reason: str = ""


def _school_year_label(end_year: int) -> str:
    return f"{end_year - 1}-{str(end_year)[2:]}"


def key_outcomes(graph: Hierarchy, unit: dict, source_dsn: str, state_dsn: str,
                 root_error: str | None = None) -> list[KeyOutcome]:
    """Each key's outcome, read back from the district extract and the state after the sync.

    Uses the engine's own extract query and scope, so "found at district" means exactly "a row
    the selected object's sync read". When that read fails the same way on every try (a value
    the extract cannot make, as in a key column the filter must read: the error the object's
    sync failed on), or the district cannot be reached after the object's sync failed, every
    key fails with the object's error instead of the request failing to end (and retrying).
    Only a lost connection after a good sync is raised: a retry can still tell the outcomes.
    """
    spec = graph.spec(unit["object"])
    key_col = unit["key_column"]
    scope = _scope(unit)
    fks = list(spec.foreign_keys)
    try:
        at_district, other_years = _read_district(graph, spec, scope, source_dsn, [key_col] + [f.column for f in fks])
    except psycopg.Error as exc:
        if engine.connection_failed(exc) and not root_error:
            raise
        reason = f"sync failed: {root_error}" if root_error else f"not read at the district: {str(exc).strip()}"
        return [KeyOutcome(k, False, reason[:500]) for k in scope.keys]
    with psycopg.connect(state_dsn) as st:
        at_state = {int(r[0]) for r in st.execute(
            sql.SQL("SELECT {k} FROM {t} WHERE district_id = %s AND {k} = ANY(%s)").format(
                k=ident(key_col), t=table(STATE_SCHEMA, spec)),
            [unit["district_id"], list(scope.keys)]).fetchall()}
        out = []
        for k in scope.keys:
            row = at_district.get(k)
            if row is None:
                reason = NOT_FOUND
                if k in other_years:
                    years = ", ".join(_school_year_label(y) for y in sorted(other_years[k]))
                    reason += f" for the {_school_year_label(scope.end_year)} school year (it is in {years})"
                out.append(KeyOutcome(k, False, reason))
            elif root_error:
                out.append(KeyOutcome(k, False, f"sync failed: {root_error}"[:500]))
            elif row[-1] is not None:
                out.append(KeyOutcome(k, False, f"refused: {row[-1]}"))
            elif k in at_state:
                out.append(KeyOutcome(k, True))
            else:
                reason = "refused: not at the state after the sync"
                for i, fk in enumerate(fks, start=1):
                    value = row[i]
                    if value is None:
                        continue
                    parent = graph.spec(fk.target)
                    held = st.execute(sql.SQL("SELECT 1 FROM {} WHERE district_id = %s AND {} = %s").format(
                        table(STATE_SCHEMA, parent), ident(fk.target_column)),
                        [unit["district_id"], value]).fetchone()
                    if not held:
                        reason = f"refused: parent_missing:{fk.target} ({fk.column} {value} is not at the state)"
                        break
                out.append(KeyOutcome(k, False, reason))
    return out


def _read_district(graph: Hierarchy, spec: ObjectSpec, scope: engine.Scope, source_dsn: str,
                   columns: list[str]) -> tuple[dict[int, tuple], dict[int, list[int]]]:
    """The selected object's extract rows for the scope's keys (`columns` then reject_reason, by
    key) and, for keys it lacks, the other school years the district has them in."""
    key_col = scope.key_column
    wanted = [*columns, "reject_reason"]
    with psycopg.connect(source_dsn) as src:
        src.read_only = True
        query = engine.source_query(graph, spec, scope, src)
        rows = src.execute(sql.SQL("SELECT {} FROM ({}) AS r").format(
            sql.SQL(", ").join(sql.SQL("r.{}").format(ident(c)) for c in wanted), sql.SQL(query))).fetchall()
        at_district = {int(r[0]): r for r in rows}
        other_years: dict[int, list[int]] = {}
        missing = [k for k in scope.keys if k not in at_district]
        if missing and spec.school_year_scoped:  # say when the ID exists, but in another year
            other = sql.SQL("SELECT DISTINCT q.{k}, q.{y} FROM ({x}\n) AS q WHERE q.{k} = ANY(%(keys)s)").format(
                k=ident(key_col), y=ident(YEAR_COLUMN), x=sql.SQL(engine.extract_sql(graph, spec)))
            text = psycopg.ClientCursor(src).mogrify(other, dict(scope.params, keys=missing))
            for k, year in src.execute(text).fetchall():
                other_years.setdefault(int(k), []).append(int(year))
    return at_district, other_years


def finish(unit: dict, graph: Hierarchy | None = None, cfg: config_mod.Config | None = None) -> dict:
    """Close the batch: final per-object rows, per-key outcomes, Records ok/total, status."""
    from campus_sync import hierarchy

    graph = graph or hierarchy.load()
    cfg = cfg or config_mod.load()
    district = cfg.district(unit["district_id"])
    sdsn = tasks.state_dsn(cfg)
    batch_id = unit["batch_id"]
    with psycopg.connect(sdsn) as conn:
        recorded = {o: (s, m) for o, s, m in conn.execute(
            "SELECT object, status, message FROM sync.batch_result WHERE batch_id = %s AND district_id = %s",
            (batch_id, district.id)).fetchall()}
        failed, not_run = [], []
        for name in unit["objects"]:
            ref = {"district_id": district.id, "object": name}
            status, message = recorded.get(name, (None, None))
            if status is None:
                not_run.append(name)
                history.record_result(conn, batch_id, ref, status="not_run", message="not attempted")
            elif status == "gray":
                failed.append(name)
                message = "the sync task ended before this object finished"
                history.record_result(conn, batch_id, ref, status="failed", message=message)
                recorded[name] = ("failed", message)
            elif status == "failed":
                failed.append(name)
            elif status == "not_run":
                not_run.append(name)
        root_status, root_message = recorded.get(unit["object"], (None, None))
        root_error = None
        if root_status in (None, "failed", "not_run", "gray"):
            root_error = root_message or "the object was not synced"
        outcomes = key_outcomes(graph, unit, db.dsn(district.conn_id, f"district {district.id}"), sdsn, root_error=root_error)
        with conn.transaction():
            conn.execute("DELETE FROM sync.selective_key WHERE batch_id = %s", (batch_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO sync.selective_key (batch_id, key_value, object, district_id, ok, reason)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [(batch_id, o.key, unit["object"], district.id, o.ok, o.reason) for o in outcomes])
        ok = sum(o.ok for o in outcomes)
        status = "failed" if failed else "complete"
        history.finish_batch(conn, batch_id, status, {**_records(ok, len(outcomes)), "failed_objects": failed,
                                                      "not_run": not_run})
    return {"batch_id": batch_id, "status": status, "records": f"{ok}/{len(outcomes)}",
            "successful": [o.key for o in outcomes if o.ok],
            "failed": {o.key: o.reason for o in outcomes if not o.ok},
            "failed_objects": failed, "not_run": not_run}


def run(params: dict, *, user: str, graph: Hierarchy | None = None, cfg: config_mod.Config | None = None) -> dict:
    """Validate, record, sync and finish one selective request in this process (CLI, heal)."""
    from campus_sync import hierarchy

    graph = graph or hierarchy.load()
    cfg = cfg or config_mod.load()
    req = build_request(graph, cfg, params, user=user)
    unit = start(req, cfg=cfg)
    try:
        sync(unit, graph, cfg)
    finally:
        summary = finish(unit, graph, cfg)
    return summary


# ------------------------------------------------------------------------------ reading back
def batch_report(conn: psycopg.Connection, batch_id: int, cfg: config_mod.Config | None = None) -> dict:
    """Everything the Sync Request History report shows for one selective batch."""
    cfg = cfg or config_mod.load()
    found = history.batches(conn, limit=1, batch_id=batch_id)
    if not found:
        raise SelectiveError(f"no request with id {batch_id}")
    batch = found[0]
    if batch["kind"] != KIND:
        raise SelectiveError(f"request {batch_id} is a {batch['kind']} resync, not a selective sync; "
                             "only selective syncs have a per-ID report")
    details = batch["details"] or {}
    district_id = details.get("district") or (batch["districts"] or [""])[0]
    try:
        name = cfg.district(district_id).name
    except config_mod.ConfigError:
        name = district_id
    keys = conn.execute(
        "SELECT key_value, ok, reason FROM sync.selective_key WHERE batch_id = %s ORDER BY key_value",
        (batch_id,)).fetchall()
    recorded = {int(k) for k, _, _ in keys}
    pending = [int(k) for k in details.get("keys", []) if int(k) not in recorded]
    return {
        "batch_id": batch_id,
        "status": batch["status"],
        "district_id": district_id,
        "district_name": name,
        "object": details.get("object", (batch["objects"] or [""])[0]),
        "key_column": details.get("key_column", ""),
        "requested_by": batch["requested_by"],
        "requested_at": batch["requested_at"],
        "completed_at": batch["completed_at"],
        "records": details.get("records", ""),
        "successful": [(int(k), r) for k, ok, r in keys if ok],
        "failed": [(int(k), r) for k, ok, r in keys if not ok] + [(k, "not processed (request did not finish)")
                                                                   for k in pending],
        "objects": [{"object": r["object"], "status": r["status"], "processed": r["processed"],
                     "errors": r["errors"], "inserted": r["inserted"], "updated": r["updated"],
                     "deleted": r["deleted"]} for r in batch["results"]],
    }


def format_ts(value: Any) -> str:
    """Seed style: 01/03/2013 10:15:51 AM (in the local time zone)."""
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%m/%d/%Y %I:%M:%S %p")
    return str(value or "")
