"""Verification Summary: how well the state matches each district. Plain Python.

For each district and each object enabled for the state, the object's extract (the engine's own
query and school-year scope) is streamed from the district into a temp table in the state
database and compared with the state rows of that district (and year) by key and row content:

- At District: rows the extract returns, including rows the state refuses.
- Refused: rows the state refuses **by rule** (the extract's `reject_reason`: state-excluded
  enrollments, grade levels, calendars, test-score requirements...), rows with a NULL key or a
  key the district has more than once (`null_key`, `duplicate_key`, as the sync refuses them),
  and orphans whose parent is neither among the district's accepted rows nor at the state.
  They are not expected at the state, so they do not count as missing; a refused row that *is*
  at the state counts as extra.
- At State: the state's rows for the district (and year).
- Missing / Extra / Different: expected rows not at the state / state rows not expected / same
  key, other content. Total Errors = Missing + Extra + Different.
- Distinct: distinct keys over expected and state rows (= expected + extra).
- Accuracy % = 100 x (Distinct - Total Errors) / Distinct, rounded *down* to 2 decimals (so
  100.00 % always means no error; 100 % when Distinct is 0). A district's Overall Accuracy is
  the same ratio over the sums of all its objects.

A district that cannot be verified (its extract fails, it cannot be reached) is reported for
that district; the others are still verified and stored in the same run.

Results (and a sample of mismatched keys) are stored in `sync.verification_*`
(include/sql/state_verification.sql); `latest()` shows the last summary without recomputing.
`heal()` feeds the mismatched records' personIDs / enrollmentIDs into selective syncs and
verifies again.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from campus_sync import config as config_mod
from campus_sync import db
from campus_sync.engine import digest
from campus_sync.engine import sync as engine
from campus_sync.tools import selective
from campus_sync.orchestration import tasks
from campus_sync.hierarchy import Hierarchy, ObjectSpec
from campus_sync.hierarchy.model import COLUMN_TYPES
from campus_sync.engine.pipe import copy_across
from campus_sync.engine.schema import STATE_SCHEMA, ident, table

SAMPLE = 20
STAGE = sql.Identifier("campus_verify_stage")
EXPECTED = sql.Identifier("campus_verify_expected")
ISSUES = sql.Identifier("campus_verify_issue")


class VerifyError(RuntimeError):
    """A district could not be verified (e.g. an object's extract query fails, or the district
    cannot be reached). That district's results are not stored; the run keeps the error, and
    the other districts are still verified and stored. `summary`: what `verify` stored, with
    `errors` per district, when the error ends a run."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


@dataclass
class ObjectCheck:
    object: str
    distinct: int = 0
    at_district: int = 0
    at_state: int = 0
    refused: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    unhealable: int = 0
    verified_at: str = ""
    heal_root: str | None = None  # the selective object whose key repairs this object's rows
    heal_keys: list[int] = field(default_factory=list)
    samples: list[tuple[str, str, int | None]] = field(default_factory=list)  # (issue, key, heal key)

    @property
    def total_errors(self) -> int:
        return self.missing + self.extra + self.different

    @property
    def accuracy(self) -> float:
        return accuracy(self.distinct, self.total_errors)


def accuracy(distinct: int, errors: int) -> float:
    """100 x (distinct - errors) / distinct, rounded down to 2 decimals; 100 when nothing to compare."""
    if distinct <= 0:
        return 100.0
    exact = decimal.Decimal(distinct - errors) * 100 / decimal.Decimal(distinct)
    return float(exact.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_DOWN))


def heal_roots(graph: Hierarchy, state: str | None) -> dict[str, str]:
    """Object -> the selective object whose sync repairs it (the narrowest plan containing it)."""
    out: dict[str, str] = {}
    plans = sorted(((root, selective.plan(graph, root, state)) for root in selective.selective_objects(graph)
                    if graph.spec(root).applies_to(state)), key=lambda p: len(p[1]))
    for root, names in plans:
        for n in names:
            out.setdefault(n, root)
    return out


def _key_text(spec, alias: str) -> sql.Composable:
    return sql.SQL("concat_ws('|', {})").format(
        sql.SQL(", ").join(sql.SQL("{}.{}::text").format(sql.Identifier(alias), ident(k)) for k in spec.key))


def check_object(graph: Hierarchy, name: str, cur: psycopg.Cursor, source: psycopg.Connection,
                 district_id: str, end_year: int, heal_root: str | None) -> ObjectCheck:
    """Compare one object; runs inside the caller's state transaction (temp tables)."""
    spec = graph.spec(name)
    scope = engine.Scope(end_year=end_year)
    check = ObjectCheck(object=name, heal_root=heal_root)
    target = table(STATE_SCHEMA, spec)
    col_defs = sql.SQL(", ").join(sql.SQL("{} {}").format(ident(c), sql.SQL(COLUMN_TYPES[t]))
                                  for c, t in spec.columns)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(STAGE))
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}, reject_reason text)").format(STAGE, col_defs))
    cols = sql.SQL(", ").join(ident(c) for c in spec.column_names)
    query = engine.source_query(graph, spec, scope, source)
    copy_across(source, sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(query)), cur,
                sql.SQL("COPY {} ({}, reject_reason) FROM STDIN").format(STAGE, cols))
    cur.execute(sql.SQL("ANALYZE {}").format(STAGE))
    _refuse_bad_keys(spec, cur)
    # Orphans: the parent is neither among the district's accepted rows (verified earlier in run
    # order) nor at the state. The engine refuses them as parent_missing; so does this check.
    for fk in spec.foreign_keys:
        parent = graph.spec(fk.target)
        cur.execute(sql.SQL(
            "UPDATE {stage} g SET reject_reason = %s WHERE g.reject_reason IS NULL AND g.{col} IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.district_id = %s AND p.{pcol} = g.{col})"
            " AND NOT EXISTS (SELECT 1 FROM {expected} e WHERE e.object = %s AND e.key = g.{col}::text)"
        ).format(stage=STAGE, col=ident(fk.column), parent=table(STATE_SCHEMA, parent),
                 pcol=ident(fk.target_column), expected=EXPECTED),
            (f"parent_missing:{fk.target}", district_id, fk.target))
    check.at_district, check.refused = cur.execute(sql.SQL(
        "SELECT count(*), count(reject_reason) FROM {}").format(STAGE)).fetchone()
    if len(spec.key) == 1:
        cur.execute(sql.SQL("INSERT INTO {} (object, key) SELECT %s, g.{}::text FROM {} g"
                            " WHERE g.reject_reason IS NULL ON CONFLICT DO NOTHING").format(
            EXPECTED, ident(spec.key[0]), STAGE), (name,))

    scope_sql, scope_params = engine.scope_filter(spec, scope, "s")
    params = [district_id, *scope_params]
    match = sql.SQL(" AND ").join(sql.SQL("s.{0} = g.{0}").format(ident(k)) for k in spec.key)
    column = graph.spec(heal_root).selective_key if heal_root else None
    heal = (lambda alias: sql.SQL("{}.{}").format(sql.Identifier(alias), ident(column))) if column \
        else (lambda alias: sql.SQL("NULL::bigint"))
    non_key = [c for c in spec.column_names if c not in spec.key]
    check.at_state = cur.execute(sql.SQL("SELECT count(*) FROM {} s WHERE {}").format(target, scope_sql),
                                 params).fetchone()[0]
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ISSUES))
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (issue text, key_text text, heal_key bigint)").format(ISSUES))
    cur.execute(sql.SQL(
        "INSERT INTO {issues} SELECT 'missing', {gkey}, {gheal} FROM {stage} g WHERE g.reject_reason IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM {target} s WHERE {scope} AND {match})"
    ).format(issues=ISSUES, gkey=_key_text(spec, "g"), gheal=heal("g"), stage=STAGE, target=target,
             scope=scope_sql, match=match), params)
    cur.execute(sql.SQL(
        "INSERT INTO {issues} SELECT 'extra', {skey}, {sheal} FROM {target} s WHERE {scope}"
        " AND NOT EXISTS (SELECT 1 FROM {stage} g WHERE (g.reject_reason IS NULL OR {kept}) AND {match})"
    ).format(issues=ISSUES, skey=_key_text(spec, "s"), sheal=heal("s"), stage=STAGE, target=target,
             kept=digest.kept_expr(spec, "g"),
             scope=scope_sql, match=match), params)
    if non_key:
        cur.execute(sql.SQL(
            "INSERT INTO {issues} SELECT 'different', {gkey}, {gheal} FROM {stage} g JOIN {target} s"
            " ON {match} AND {scope} WHERE g.reject_reason IS NULL AND {differ}"
        ).format(issues=ISSUES, gkey=_key_text(spec, "g"), gheal=heal("g"), stage=STAGE, target=target,
                 scope=scope_sql, match=match, differ=digest.rows_differ(spec, "s", "g")), params)
    counts = dict(cur.execute(sql.SQL("SELECT issue, count(*) FROM {} GROUP BY issue").format(ISSUES)).fetchall())
    check.missing, check.extra, check.different = (counts.get(k, 0) for k in ("missing", "extra", "different"))
    check.distinct = check.at_district - check.refused + check.extra
    if check.total_errors:
        check.samples = [(i, k, h) for i, k, h in cur.execute(sql.SQL(
            "SELECT issue, key_text, heal_key FROM {} ORDER BY issue, key_text LIMIT %s").format(ISSUES),
            (SAMPLE,)).fetchall()]
        if column:
            check.heal_keys = [int(k) for (k,) in cur.execute(sql.SQL(
                "SELECT DISTINCT heal_key FROM {} WHERE heal_key IS NOT NULL ORDER BY 1 LIMIT %s").format(ISSUES),
                (selective.MAX_IDS + 1,)).fetchall()]
            check.unhealable = cur.execute(sql.SQL(
                "SELECT count(*) FROM {} WHERE heal_key IS NULL").format(ISSUES)).fetchone()[0]
        else:
            check.unhealable = check.total_errors
    check.verified_at = dt.datetime.now(dt.timezone.utc).isoformat()
    return check


def _refuse_bad_keys(spec: ObjectSpec, cur: psycopg.Cursor) -> None:
    """Refuse what the sync refuses on the staged rows themselves, under the same reasons: a
    NULL key (`null_key`: it can never be at the state) and every row of a key the district
    has more than once (`duplicate_key`). Such rows are counted as refused, not expected."""
    null = sql.SQL(" OR ").join(sql.SQL("g.{} IS NULL").format(ident(k)) for k in spec.key)
    cur.execute(sql.SQL("UPDATE {} g SET reject_reason = 'null_key' WHERE g.reject_reason IS NULL AND ({})")
                .format(STAGE, null))
    keys = sql.SQL(", ").join(ident(k) for k in spec.key)
    cur.execute(sql.SQL(
        "UPDATE {stage} g SET reject_reason = 'duplicate_key' WHERE g.reject_reason IS NULL"
        " AND ({keys}) IN (SELECT {keys} FROM {stage} GROUP BY {keys} HAVING count(*) > 1)"
    ).format(stage=STAGE, keys=keys))


def verify_district(graph: Hierarchy, cfg: config_mod.Config, district_id: str, state_dsn: str,
                    names: list[str] | None = None) -> list[ObjectCheck]:
    """Check every enabled object (run order, so parents' accepted keys are known) of one district."""
    district = cfg.district(district_id)
    end_year = cfg.end_year("current")
    roots = heal_roots(graph, cfg.state)
    names = names or list(graph.enabled(cfg.state))
    out = []
    try:
        source_dsn = db.dsn(district.conn_id, f"district {district.id}")
        source = psycopg.connect(source_dsn)
    except (db.ConnectionConfigError, psycopg.Error) as exc:
        raise VerifyError(f"cannot connect to district {district.id}: {str(exc).strip()}") from exc
    with source, psycopg.connect(state_dsn) as state:
        source.read_only = True
        cur = state.cursor()
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (object text, key text, PRIMARY KEY (object, key))"
                            " ON COMMIT DROP").format(EXPECTED))
        for name in names:
            try:
                out.append(check_object(graph, name, cur, source, district.id, end_year, roots.get(name)))
            except psycopg.Error as exc:
                raise VerifyError(f"cannot verify {name} for district {district.id}: "
                                  f"{str(exc).strip()}") from exc
        state.rollback()  # only temp tables were written
    return out


# ------------------------------------------------------------------------------ storing
def _store(conn: psycopg.Connection, run_id: int, district_id: str, checks: list[ObjectCheck]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO sync.verification_result (run_id, district_id, object, distinct_rows, at_district,
                     at_state, refused, missing, extra, different, total_errors, accuracy, unhealable, verified_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(run_id, district_id, c.object, c.distinct, c.at_district, c.at_state, c.refused, c.missing,
              c.extra, c.different, c.total_errors, c.accuracy, c.unhealable, c.verified_at) for c in checks])
        cur.executemany(
            "INSERT INTO sync.verification_issue (run_id, district_id, object, issue, key_text, heal_key)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(run_id, district_id, c.object, i, k, h) for c in checks for i, k, h in c.samples])


def verify(districts: list[str] | None = None, *, user: str, heal: bool = False,
           previous_run_id: int | None = None, dag_id: str | None = None, run_id: str | None = None,
           graph: Hierarchy | None = None, cfg: config_mod.Config | None = None) -> dict:
    """Verify the districts (default: all configured), store the results, return the summary.

    The summary carries, per district, the keys a selective sync would repair (`heal_keys`).
    A district that cannot be verified does not stop the others: each of the rest is verified
    and stored, the run keeps the errors per district, and then `VerifyError` names every
    failed district and carries the stored summary (`summary`, with `errors`).
    """
    from campus_sync import hierarchy

    graph = graph or hierarchy.load()
    cfg = cfg or config_mod.load()
    chosen = [cfg.district(d).id for d in (districts or cfg.district_ids)]
    chosen = sorted(dict.fromkeys(chosen))
    sdsn = tasks.state_dsn(cfg)
    with tasks.open_state(cfg) as conn:
        vrun = conn.execute(
            """INSERT INTO sync.verification_run (requested_by, end_year, districts, heal, previous_run_id,
                                                  dag_id, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (user, cfg.end_year(), chosen, heal, previous_run_id, dag_id, run_id)).fetchone()[0]
        conn.commit()
        heal_keys: dict[str, dict[str, list[int]]] = {}
        unhealable: dict[str, dict[str, int]] = {}
        errors: dict[str, str] = {}
        for d in chosen:
            try:
                checks = verify_district(graph, cfg, d, sdsn)
            except VerifyError as exc:
                errors[d] = str(exc)
                continue
            _store(conn, vrun, d, checks)
            keys: dict[str, set[int]] = {}
            for c in checks:
                if c.heal_root and c.heal_keys:
                    keys.setdefault(c.heal_root, set()).update(c.heal_keys)
                if c.unhealable:
                    unhealable.setdefault(d, {})[c.object] = c.unhealable
            if keys:
                heal_keys[d] = {root: sorted(v) for root, v in keys.items()}
        details = {"heal_keys": heal_keys, "unhealable": unhealable} | ({"errors": errors} if errors else {})
        conn.execute("UPDATE sync.verification_run SET completed_at = now(), details = %s WHERE id = %s",
                     (json.dumps(details), vrun))
        conn.commit()
        summary = latest(conn, chosen, cfg=cfg, run_id=vrun)
    summary["heal_keys"] = heal_keys
    summary["unhealable"] = unhealable
    if errors:
        summary["errors"] = errors
        verified = [d for d in chosen if d not in errors]
        raise VerifyError(
            "; ".join(f"district {d}: {msg}" for d, msg in sorted(errors.items()))
            + (f" (verification run {vrun}: {', '.join(verified)} verified and stored)" if verified
               else f" (verification run {vrun}: no district verified)"), summary=summary)
    return summary


def heal(summary: dict, *, user: str, graph: Hierarchy | None = None, cfg: config_mod.Config | None = None,
         dag_id: str | None = None, run_id: str | None = None) -> dict:
    """Selective-sync every mismatched personID / enrollmentID of `summary`, then verify again.

    Per district, PersonIdentity keys run first (they also resync those people's enrollments),
    then Enrollment keys. Mismatches in objects outside both plans (School, Calendar, Test...)
    are left to a partial resync and reported as `unhealable`.
    """
    from campus_sync import hierarchy

    graph = graph or hierarchy.load()
    cfg = cfg or config_mod.load()
    batches, skipped = [], []
    order = {n: i for i, n in enumerate(graph.names)}
    for district_id, roots in sorted(summary.get("heal_keys", {}).items()):
        for root in sorted(roots, key=order.get):
            keys = roots[root]
            if len(keys) > selective.MAX_IDS:
                skipped.append({"district": district_id, "object": root, "keys": len(keys),
                                "reason": f"more than {selective.MAX_IDS} keys: run a full resync"})
                continue
            result = selective.run({"object": root, "ids": keys, "district": district_id},
                                   user=f"{user} (verification heal)", graph=graph, cfg=cfg)
            batches.append({"district": district_id, "object": root, "batch_id": result["batch_id"],
                            "records": result["records"], "status": result["status"]})
    after = verify([d["district_id"] for d in summary["districts"]], user=user, heal=False,
                   previous_run_id=summary["run_id"], dag_id=dag_id, run_id=run_id, graph=graph, cfg=cfg)
    return {"batches": batches, "skipped": skipped, "before_run_id": summary["run_id"], "summary": after}


# ------------------------------------------------------------------------------ reading
def latest(conn: psycopg.Connection, districts: list[str] | None = None, *,
           cfg: config_mod.Config | None = None, run_id: int | None = None) -> dict:
    """The last stored summary per district (or the given run's), without recomputing."""
    cfg = cfg or config_mod.load()
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        """WITH last AS (
               SELECT DISTINCT ON (district_id) district_id, run_id FROM sync.verification_result
                WHERE (%(run)s::bigint IS NULL OR run_id = %(run)s)
                  AND (%(d)s::text[] IS NULL OR district_id = ANY(%(d)s))
                ORDER BY district_id, verified_at DESC, run_id DESC)
           SELECT r.*, v.end_year FROM sync.verification_result r JOIN last USING (district_id, run_id)
             JOIN sync.verification_run v ON v.id = r.run_id
            ORDER BY r.district_id, r.object""",
        {"run": run_id, "d": list(districts) if districts else None}).fetchall()
    order = {}
    try:
        from campus_sync import hierarchy

        order = {n: i for i, n in enumerate(hierarchy.load().names)}
    except Exception:  # noqa: BLE001 - ordering only
        pass
    by_district: dict[str, list[dict]] = {}
    for r in rows:
        by_district.setdefault(r["district_id"], []).append(r)
    out = []
    end_year = None
    for d, objs in sorted(by_district.items()):
        try:
            name = cfg.district(d).name
        except config_mod.ConfigError:
            name = d
        objs.sort(key=lambda r: (order.get(r["object"], 10**6), r["object"]))
        distinct = sum(r["distinct_rows"] for r in objs)
        errors = sum(r["total_errors"] for r in objs)
        end_year = objs[0]["end_year"]
        out.append({
            "district_id": d, "name": name, "run_id": objs[0]["run_id"],
            "overall_accuracy": accuracy(distinct, errors), "distinct": distinct, "total_errors": errors,
            "objects": [{"object": r["object"], "accuracy": float(r["accuracy"]),
                         "verified_at": r["verified_at"].isoformat(), "distinct": r["distinct_rows"],
                         "at_district": r["at_district"], "at_state": r["at_state"], "refused": r["refused"],
                         "missing": r["missing"], "extra": r["extra"], "different": r["different"],
                         "total_errors": r["total_errors"], "unhealable": r["unhealable"]} for r in objs],
        })
    return {"run_id": run_id if run_id is not None else (max((d["run_id"] for d in out), default=None)),
            "end_year": end_year, "districts": out}


def issues(conn: psycopg.Connection, run_id: int, district_id: str) -> list[dict]:
    """The stored sample of mismatched records of one run and district."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT object, issue, key_text, heal_key FROM sync.verification_issue"
        " WHERE run_id = %s AND district_id = %s ORDER BY object, issue, key_text",
        (run_id, district_id)).fetchall()


def as_dict(check: ObjectCheck) -> dict[str, Any]:
    return dict(asdict(check), total_errors=check.total_errors, accuracy=check.accuracy)
