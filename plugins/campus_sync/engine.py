"""The sync engine: one object, one district, one transaction. Plain Python + psycopg.

compare (a resync: whole-scope digests of both sides in parallel, then per-bucket digests if
   they differ; see digest.py) → nothing differs: done, nothing copied or written
→ extract (district, `COPY (query) TO STDOUT`, streamed chunk by chunk: constant memory; every
   row, or only the buckets that differ)
→ staging (`COPY ... FROM STDIN` into a temp table in the state transaction; a first load of an
   object without parent keys goes straight into the state table instead)
→ refuse (the extract's `reject_reason`, then parents missing at the state), counted per reason
→ merge (delete rows the district no longer has, update rows that differ, insert new ones;
   scoped to the district, the school year, the differing buckets and, for a selective sync,
   the given keys)
→ commit, and return the counts. Any error rolls the whole object back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from campus_sync import digest
from campus_sync.hierarchy import Hierarchy, ObjectSpec
from campus_sync.hierarchy.model import COLUMN_TYPES, YEAR_COLUMN
from campus_sync.schema import STATE_SCHEMA, ident, table

EXCLUSION_PREFIX = "state_excluded_"
PARENT_MISSING = "parent_missing:"
STAGE = sql.Identifier("campus_stage")
HELD = sql.Identifier("campus_held")


class SyncError(RuntimeError):
    """The object could not be synced; nothing was written."""


class EmptySourceError(SyncError):
    """The district returned no rows while the state holds some: refusing to wipe the state."""


@dataclass(frozen=True)
class Scope:
    """What one load covers: a school year (for scoped objects) and optionally some keys."""

    end_year: int
    key_column: str | None = None  # selective sync: only rows whose column is in `keys`
    keys: tuple[int, ...] = ()

    @property
    def params(self) -> dict:
        return {
            "end_year": self.end_year,
            "scope_start": dt.date(self.end_year - 1, 7, 1),
            "scope_end": dt.date(self.end_year, 6, 30),
        }


@dataclass
class SyncResult:
    object: str
    district_id: str
    processed: int = 0
    errors: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    excluded: int = 0
    copied: int = 0  # rows streamed into staging: all on a first load, only differing buckets after
    error_reasons: dict[str, int] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    status: str = "gray"

    def to_dict(self) -> dict:
        return asdict(self)


def status_colour(processed: int, errors: int) -> str:
    """Seed 001: green no errors, yellow ≤ 1 % of attempts, red > 1 %."""
    if errors == 0:
        return "green"
    return "yellow" if errors * 100 <= processed else "red"


def extract_sql(graph: Hierarchy, spec: ObjectSpec) -> str:
    if graph.sql_root is None:
        raise SyncError(f"no SQL folder for object {spec.name!r}")
    text = (graph.sql_root / spec.sql).read_text(encoding="utf-8").strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def source_query(graph: Hierarchy, spec: ObjectSpec, scope: Scope, conn: psycopg.Connection,
                 buckets: tuple[int, list[int]] | None = None) -> str:
    """The district query, bound client-side (COPY takes no parameters), as one string.
    `buckets` = (bucket count, the buckets wanted) limits it to those key-hash buckets."""
    cols = [ident(c) for c in spec.column_names] + [sql.Identifier("reject_reason")]
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    if spec.school_year_scoped:
        where.append(sql.SQL("q.{} = %(end_year)s").format(ident(YEAR_COLUMN)))
    if scope.key_column:
        where.append(sql.SQL("q.{} = ANY(%(keys)s)").format(ident(scope.key_column)))
    if buckets is not None:
        where.append(sql.SQL("{} = ANY(%(buckets)s)").format(digest.bucket_expr(spec, "q", buckets[0])))
    query = sql.SQL("SELECT {cols} FROM ({extract}\n) AS q WHERE {where}").format(
        cols=sql.SQL(", ").join(sql.SQL("q.{}").format(c) for c in cols),
        extract=sql.SQL(extract_sql(graph, spec)),
        where=sql.SQL(" AND ").join(where),
    )
    params = dict(scope.params, keys=list(scope.keys), buckets=list(buckets[1]) if buckets else [])
    return psycopg.ClientCursor(conn).mogrify(query, params)


def scope_filter(spec: ObjectSpec, scope: Scope, alias: str) -> tuple[sql.Composable, list]:
    parts: list[sql.Composable] = [sql.SQL("{}.district_id = %s").format(sql.Identifier(alias))]
    params: list = []
    if spec.school_year_scoped:
        parts.append(sql.SQL("{}.{} = %s").format(sql.Identifier(alias), ident(YEAR_COLUMN)))
        params.append(scope.end_year)
    if scope.key_column:
        parts.append(sql.SQL("{}.{} = ANY(%s)").format(sql.Identifier(alias), ident(scope.key_column)))
        params.append(list(scope.keys))
    return sql.SQL(" AND ").join(parts), params


def sync_object(
    graph: Hierarchy,
    name: str,
    *,
    district_id: str,
    source_dsn: str,
    state_dsn: str,
    scope: Scope,
    allow_empty: bool = False,
) -> SyncResult:
    """Sync one object for one district in one state transaction; return its counts."""
    spec = graph.spec(name)
    if scope.key_column and scope.key_column not in spec.column_names:
        raise SyncError(f"object {name!r} has no column {scope.key_column!r} to select keys by")
    result = SyncResult(object=name, district_id=district_id,
                        started_at=dt.datetime.now(dt.timezone.utc).isoformat())
    target = table(STATE_SCHEMA, spec)
    scope_sql, scope_params = scope_filter(spec, scope, "s")
    scope_params = [district_id, *scope_params]

    with psycopg.connect(state_dsn) as state, psycopg.connect(source_dsn) as source:
        # One snapshot of the district for the digest and the copy that follows it.
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        source.read_only = True
        cur = state.cursor()
        # A killed task must not leave its statement running on the server holding locks.
        cur.execute("SET LOCAL client_connection_check_interval = '5s'")
        # Two resyncs of the same district and object never interleave.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"campus_sync:{district_id}:{name}",))
        # A district's first load into the table is a plain insert: merging against an empty,
        # analysed table makes the planner re-scan the growing target once per row.
        fresh = not cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} s WHERE s.district_id = %s)")
                                .format(target), [district_id]).fetchone()[0]

        # A resync (not a first load, not a selective one) first compares bucket digests.
        known: digest.Digest | None = None
        wanted: tuple[int, list[int]] | None = None
        if not fresh and not scope.key_column:
            known, held, wanted = _compare_digests(graph, spec, scope, source, cur, target,
                                                   scope_sql, scope_params)
            if known.rows == 0 and held and not allow_empty:
                raise EmptySourceError(
                    f"district {district_id} returned no {name} rows but the state holds {held}; "
                    "refusing to delete them (resync with allow_empty to confirm)"
                )
            if wanted is not None and not wanted[1]:  # nothing differs: nothing to copy or write
                _count(result, known.rows, known.reasons)
                state.commit()
                return _finish(result)

        if fresh and not spec.foreign_keys and not scope.key_column:
            # Nothing to check at the state and nothing to merge: stream straight into the table.
            accepted, reasons = _load_direct(graph, spec, scope, source, cur, target, district_id)
            _count(result, accepted + sum(reasons.values()), reasons)
            result.copied = result.inserted = accepted
            state.commit()
            return _finish(result)

        _stage(graph, spec, scope, source, cur, wanted, analyze=not fresh)
        _check_parents(graph, spec, cur, district_id)
        staged = dict(cur.execute(sql.SQL("SELECT reject_reason, count(*) FROM {} GROUP BY 1").format(STAGE)))
        result.copied = rows = staged.pop(None, 0) + sum(staged.values())
        if known is not None:  # the digest counted the extract's refusals over every bucket
            _count(result, known.rows, known.reasons | {r: n for r, n in staged.items()
                                                        if r.startswith(PARENT_MISSING)})
        else:
            _count(result, rows, staged)

        if wanted is not None:  # rows outside the copied buckets are known to be equal
            bucket_scope = sql.SQL("{} AND {} = ANY(%s)").format(scope_sql, digest.bucket_expr(spec, "s", wanted[0]))
            result.deleted, result.updated, result.inserted = _merge_buckets(
                cur, spec, target, bucket_scope, [*scope_params, wanted[1]])
        elif fresh:
            result.inserted = _insert(cur, spec, target, district_id)
        else:
            result.deleted, result.updated = _delete_and_update(cur, spec, target, scope_sql, scope_params)
            result.inserted = _insert(cur, spec, target, district_id, sql.SQL(
                "NOT EXISTS (SELECT 1 FROM {} s WHERE s.district_id = %s AND {})").format(target, _key_match(spec)),
                [district_id])
        state.commit()
    return _finish(result)


@contextmanager
def _reading(spec: ObjectSpec) -> Iterator[None]:
    """An extract that does not fit the district's tables fails naming its file."""
    try:
        yield
    except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable) as exc:
        raise SyncError(f"extract query include/sql/{spec.sql} for {spec.name!r}: {exc}".strip()) from exc


def _compare_digests(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
                     cur: psycopg.Cursor, target: sql.Composable, scope_sql: sql.Composable,
                     scope_params: list) -> tuple[digest.Digest, int, tuple[int, list[int]] | None]:
    """Compare both sides, each query running at the district while its twin runs at the state.
    Returns the district's digest (its row and refusal counts), the rows the state holds in
    scope, and (bucket count, buckets to copy), or None to copy everything."""
    query = source_query(graph, spec, scope, source)
    with ThreadPoolExecutor(max_workers=1) as pool:
        at_district = pool.submit(digest.district_totals, source, spec, query)
        held, state_xor = digest.state_totals(cur.connection, spec, target, scope_sql, scope_params)
        with _reading(spec):
            rows, accepted, district_xor = at_district.result()
        if (accepted, district_xor) == (held, state_xor):  # nothing differs
            district = digest.Digest(1)
            district.rows = rows
            district.reasons = digest.district_reasons(source, query) if rows > accepted else {}
            return district, held, (1, [])
        buckets = digest.bucket_count(held)
        at_district = pool.submit(digest.district_digest, source, spec, query, buckets)
        at_state = digest.state_digest(cur.connection, spec, target, scope_sql, scope_params, buckets)
        with _reading(spec):
            district = at_district.result()
    changed = district.changed(at_state)
    # Copying most buckets through a filter costs more than copying everything.
    return district, held, ((buckets, changed) if len(changed) * 2 <= buckets else None)


def _stage(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
           cur: psycopg.Cursor, wanted: tuple[int, list[int]] | None, analyze: bool) -> None:
    """Stream the district's rows (all in scope, or the wanted buckets) into a temp table.
    A merge needs its statistics; a first load (plain insert) does not, so skips ANALYZE."""
    col_defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(ident(c), sql.SQL(COLUMN_TYPES[t])) for c, t in spec.columns
    )
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}, reject_reason text) ON COMMIT DROP").format(STAGE, col_defs))
    query = source_query(graph, spec, scope, source, wanted)
    copy_in = sql.SQL("COPY {} ({}, reject_reason) FROM STDIN").format(
        STAGE, sql.SQL(", ").join(ident(c) for c in spec.column_names))
    with _reading(spec), source.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(query))) as out, \
            cur.copy(copy_in) as into:
        for chunk in out:
            into.write(chunk)
    if analyze:
        cur.execute(sql.SQL("ANALYZE {}").format(STAGE))


def _load_direct(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
                 cur: psycopg.Cursor, target: sql.Composable, district_id: str) -> tuple[int, dict[str, int]]:
    """A district's first load of an object with no parent keys: COPY the accepted rows straight
    into the state table (no staging, no second write). The refused ones are counted by reason
    at the district, in the same snapshot, without leaving it."""
    query = source_query(graph, spec, scope, source)
    with _reading(spec):
        reasons = digest.district_reasons(source, query)
    extract = sql.SQL(query)
    cols = sql.SQL(", ").join(ident(c) for c in spec.column_names)
    rows = sql.SQL("COPY (SELECT {}, {} FROM ({}) AS d WHERE d.reject_reason IS NULL) TO STDOUT").format(
        sql.Literal(district_id), sql.SQL(", ").join(sql.SQL("d.{}").format(ident(c)) for c in spec.column_names),
        extract)
    copy_in = sql.SQL("COPY {} (district_id, {}) FROM STDIN").format(target, cols)
    with source.cursor().copy(rows) as out, cur.copy(copy_in) as into:
        for chunk in out:
            into.write(chunk)
    return cur.rowcount, reasons


def _check_parents(graph: Hierarchy, spec: ObjectSpec, cur: psycopg.Cursor, district_id: str) -> None:
    """Refuse staged rows whose parent is not at the state, one reason per parent object."""
    for fk in spec.foreign_keys:  # sorted by column
        parent = graph.spec(fk.target)
        cur.execute(sql.SQL(
            "UPDATE {stage} g SET reject_reason = %s WHERE g.reject_reason IS NULL"
            " AND g.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p"
            " WHERE p.district_id = %s AND p.{pcol} = g.{col})"
        ).format(stage=STAGE, col=ident(fk.column), parent=table(STATE_SCHEMA, parent),
                 pcol=ident(fk.target_column)), (f"{PARENT_MISSING}{fk.target}", district_id))


def _count(result: SyncResult, processed: int, reasons: dict[str, int]) -> None:
    result.processed = processed
    result.error_reasons = dict(sorted(reasons.items()))
    result.errors = sum(reasons.values())
    result.excluded = sum(n for r, n in reasons.items() if r.startswith(EXCLUSION_PREFIX))


def _finish(result: SyncResult) -> SyncResult:
    result.unchanged = result.processed - result.errors - result.inserted - result.updated
    result.finished_at = dt.datetime.now(dt.timezone.utc).isoformat()
    result.status = status_colour(result.processed, result.errors)
    return result


def _key_match(spec: ObjectSpec, a: str = "s", b: str = "g") -> sql.Composable:
    """`a.key = b.key` for every key column."""
    return sql.SQL(" AND ").join(sql.SQL("{}.{k} = {}.{k}").format(sql.Identifier(a), sql.Identifier(b), k=ident(k))
                                 for k in spec.key)


def _insert(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable, district_id: str,
            lacking: sql.Composable | None = None, lacking_params: Sequence = ()) -> int:
    """Insert the accepted staged rows (alias `g`) that meet `lacking`, the test that the state
    does not hold them yet; all of them when None (a district's first load)."""
    cols = [ident(c) for c in spec.column_names]
    insert = sql.SQL(
        "INSERT INTO {target} (district_id, {cols}) SELECT %s, {gcols} FROM {stage} g"
        " WHERE g.reject_reason IS NULL"
    ).format(target=target, cols=sql.SQL(", ").join(cols), stage=STAGE,
             gcols=sql.SQL(", ").join(sql.SQL("g.{}").format(c) for c in cols))
    if lacking is not None:
        insert += sql.SQL(" AND {}").format(lacking)
    return cur.execute(insert, [district_id, *lacking_params]).rowcount


def _delete_and_update(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable,
                       scope_sql: sql.Composable, scope_params: list) -> tuple[int, int]:
    """Delete state rows the district no longer has (in scope); update rows that differ."""
    district_id = scope_params[0]
    key_match = _key_match(spec)
    deleted = cur.execute(sql.SQL(
        "DELETE FROM {target} s WHERE {scope} AND NOT EXISTS"
        " (SELECT 1 FROM {stage} g WHERE g.reject_reason IS NULL AND {match})"
    ).format(target=target, scope=scope_sql, stage=STAGE, match=key_match), scope_params).rowcount
    non_key = [c for c in spec.column_names if c not in spec.key]
    if not non_key:
        return deleted, 0
    updated = cur.execute(sql.SQL(
        "UPDATE {target} s SET {assign}, synced_at = now() FROM {stage} g"
        " WHERE g.reject_reason IS NULL AND s.district_id = %s AND {match}"
        " AND ({scols}) IS DISTINCT FROM ({gcols})"
    ).format(
        target=target, stage=STAGE, match=key_match,
        assign=sql.SQL(", ").join(sql.SQL("{0} = g.{0}").format(ident(c)) for c in non_key),
        scols=sql.SQL(", ").join(sql.SQL("s.{}").format(ident(c)) for c in non_key),
        gcols=sql.SQL(", ").join(sql.SQL("g.{}").format(ident(c)) for c in non_key),
    ), [district_id]).rowcount
    return deleted, updated


def _merge_buckets(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable,
                   scope_sql: sql.Composable, scope_params: list) -> tuple[int, int, int]:
    """Merge the copied buckets only. The state's keys and row hashes in those buckets are read
    once into a temp table; delete, update and insert then work through small joins and the
    primary key instead of each passing over the whole state table. A row is updated when its
    content hash differs, the same 64-bit test the digests rely on. Call after counting the
    stage: unchanged rows are removed from it."""
    district_id = scope_params[0]
    cur.execute(sql.SQL("CREATE TEMP TABLE {held} ON COMMIT DROP AS SELECT {keys}, {hash} AS row_hash"
                        " FROM {target} s WHERE {scope}").format(
        held=HELD, keys=sql.SQL(", ").join(sql.SQL("s.{}").format(ident(k)) for k in spec.key),
        hash=digest.row_hash_expr(spec, "s"), target=target, scope=scope_sql), scope_params)
    cur.execute(sql.SQL("ANALYZE {}").format(HELD))
    deleted = cur.execute(sql.SQL(
        "DELETE FROM {target} s USING {held} h WHERE s.district_id = %s AND {sh} AND NOT EXISTS"
        " (SELECT 1 FROM {stage} g WHERE g.reject_reason IS NULL AND {gh})"
    ).format(target=target, held=HELD, stage=STAGE, sh=_key_match(spec, "s", "h"),
             gh=_key_match(spec, "g", "h")), [district_id]).rowcount
    # Staged rows whose hash matches the state's are unchanged: drop them, so what is left to
    # update is small and the planner goes through the primary key.
    cur.execute(sql.SQL("DELETE FROM {stage} g USING {held} h WHERE g.reject_reason IS NULL AND {gh}"
                        " AND h.row_hash = {ghash}").format(stage=STAGE, held=HELD, gh=_key_match(spec, "g", "h"),
                                                            ghash=digest.row_hash_expr(spec, "g")))
    cur.execute(sql.SQL("ANALYZE {}").format(STAGE))
    updated = 0
    non_key = [c for c in spec.column_names if c not in spec.key]
    if non_key:
        updated = cur.execute(sql.SQL(
            "UPDATE {target} s SET {assign}, synced_at = now() FROM {stage} g"
            " WHERE g.reject_reason IS NULL AND s.district_id = %s AND {sg}"
        ).format(target=target, stage=STAGE, sg=_key_match(spec, "s", "g"),
                 assign=sql.SQL(", ").join(sql.SQL("{0} = g.{0}").format(ident(c)) for c in non_key)),
            [district_id]).rowcount
    inserted = _insert(cur, spec, target, district_id, sql.SQL("NOT EXISTS (SELECT 1 FROM {} h WHERE {})")
                       .format(HELD, _key_match(spec, "g", "h")))
    return deleted, updated, inserted


def sync_objects(graph: Hierarchy, names: Sequence[str], **kwargs) -> list[SyncResult]:
    """Sync several objects in the order given (callers pass a plan's run order)."""
    return [sync_object(graph, n, **kwargs) for n in names]
