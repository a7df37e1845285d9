"""The sync engine: one object, one district, one transaction. Plain Python + psycopg.

compare (a resync: whole-scope digests of both sides in parallel; if they differ, the keys that
   differ: keydiff.py for an integer key, else bucket digests and listings, digest.py) →
   nothing differs: done, nothing copied or written; too much would be deleted (the key
   diff's count, or the rows held beyond the district's accepted ones): refused, nothing copied
→ extract (district, `COPY (query) TO STDOUT`, streamed chunk by chunk: constant memory; every
   row, or only the keys or buckets that differ)
→ staging (`COPY ... FROM STDIN` into a temp table in the state transaction; a first load goes
   straight into the state table instead when it can: no parent keys, or FK triggers skippable,
   the parents then locked and checked before commit: `_drop_orphans`)
→ refuse (the extract's `reject_reason`, then parents missing at the state), counted per reason
→ merge (delete rows the district no longer has, update rows that differ, insert new ones;
   scoped to the district, the school year, the differing buckets and, for a selective sync,
   the given keys); the rows to delete are counted first, and a mass delete refused before
   the first write
→ commit, and return the counts. Any error rolls the whole object back; a data error (a value
   PostgreSQL cannot take) fails at once as `BadDataError`, naming side, district, object, column;
   a connection that could not be opened or was lost is a `ConnectionFailedError`, the one
   failure a fresh try (a fresh connection, a fresh transaction) may cure (`connection_failed`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
import hashlib
import re
import time
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from campus_sync.engine import connections
from campus_sync.engine import digest
from campus_sync.engine import keydiff
from campus_sync.hierarchy import Hierarchy, ObjectSpec
from campus_sync.hierarchy.model import COLUMN_TYPES, YEAR_COLUMN, ForeignKey
from campus_sync.engine.pipe import copy_across
from campus_sync.engine.schema import STATE_SCHEMA, ident, table

EXCLUSION_PREFIX = "state_excluded_"
PARENT_MISSING = "parent_missing:"
STAGE = sql.Identifier("campus_stage")
HELD = sql.Identifier("campus_held")
KEPT = sql.Identifier("campus_kept")


DIGEST_MEMORY = "64MB"  # work_mem for the digests' grouping (see lock_related)

CONFIRM_HINT = ("if this is intended, run again with the DAG param confirm_deletes=true "
                "(CLI: campus-sync dag run ... --confirm-deletes)")


class SyncError(RuntimeError):
    """The object could not be synced; nothing was written."""


class EmptySourceError(SyncError):
    """The district has no accepted rows while the state holds some: refusing to wipe the state."""


class MassDeleteError(SyncError):
    """The resync would delete more than the configured share of the district's state rows."""


class BadDataError(SyncError):
    """A value PostgreSQL cannot take: a district value (or what the extract makes of it) that
    is not valid for its type, out of its range or against a domain's check. The same rows
    fail the same way on every try, so this is not retried."""


class ConnectionFailedError(SyncError):
    """The state's or the district's database could not be reached, or the connection was lost
    mid-sync (refused, reset, terminated, the server restarting). Nothing was written: the
    transaction ended with its connection. A later try on a fresh connection may succeed, so
    this (unlike every other SyncError) is retried."""


# A server refusing or dropping sessions for now: too many connections, an administrator's
# pg_terminate_backend or shutdown, a crash's restart, the server starting up or shutting down.
CONNECTION_SQLSTATES = frozenset({"53300", "57P01", "57P02", "57P03"})


def connection_failed(exc: BaseException) -> bool:
    """Whether `exc` says that a database connection failed rather than that the work is wrong:
    a `ConnectionFailedError`, or psycopg's `OperationalError` from libpq itself (no SQLSTATE:
    refused, reset, unreachable, closed unexpectedly), of SQLSTATE class 08 (connection
    exception) or one of `CONNECTION_SQLSTATES`. Only these are worth another try; a data error,
    a refusal by a guard or a statement the district cannot run fails the same way every time."""
    if isinstance(exc, ConnectionFailedError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    code = exc.sqlstate
    return code is None or code.startswith("08") or code in CONNECTION_SQLSTATES


@dataclass(frozen=True)
class DeleteGuard:
    """Refuse a resync that deletes more than `max_share` of an object's state rows in scope for
    one district (and at least `min_rows` rows), unless `confirmed`."""

    max_share: float = 0.5
    min_rows: int = 10
    confirmed: bool = False


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
    """Campus's resync tool: green no errors, yellow ≤ 1 % of attempts, red > 1 %."""
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


@dataclass(frozen=True)
class Wanted:
    """What a resync copies when the digests differ: the rows of some buckets (`buckets` of
    `count`), or only the rows under some key ids (`keys`, see `digest.key_id_expr`; None for a
    NULL key), with `ctids`: where the state's rows under them are (their integer keys, or
    ctids). Neither (`Wanted` is None): everything."""

    count: int
    buckets: list[int]
    keys: list[int] | None = None
    ctids: list = field(default_factory=list)
    added: int | None = None  # keys the state lacks, when known (`keydiff`): 0 skips the insert
    deleting: int | None = None  # state rows the merge deletes, when known (`keydiff`): already guarded

    @property
    def nothing(self) -> bool:
        return not self.buckets if self.keys is None else not self.keys


def source_query(graph: Hierarchy, spec: ObjectSpec, scope: Scope, conn: psycopg.Connection,
                 buckets: tuple[int, list[int]] | None = None, keys: list[int] | None = None) -> str:
    """The district query, bound client-side (COPY takes no parameters), as one string.
    `buckets` = (bucket count, the buckets wanted) limits it to those key-hash buckets, `keys`
    to rows with those key ids (`digest.key_id_expr`; constants: the server looks them up in a
    hash, or through the district's index for an integer key)."""
    cols = [ident(c) for c in spec.column_names] + [sql.Identifier("reject_reason")]
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    if spec.school_year_scoped:
        where.append(sql.SQL("q.{} = %(end_year)s").format(ident(YEAR_COLUMN)))
    if scope.key_column:
        where.append(sql.SQL("q.{} = ANY(%(keys)s)").format(ident(scope.key_column)))
    if buckets is not None:
        where.append(sql.SQL("{} = ANY(CAST(%(buckets)s AS integer[]))").format(
            digest.bucket_expr(spec, "q", buckets[0])))
    if keys is not None:  # key ids (digest.key_id_expr): an integer key's own index finds them
        ids = sql.SQL("{} = ANY(CAST(%(key_ids)s AS bigint[]))").format(digest.key_id_expr(spec, "q"))
        column = digest.integer_key(spec)
        if column and None in keys:  # a NULL key is listed as None: stage it, to be refused
            ids = sql.SQL("({} OR q.{} IS NULL)").format(ids, ident(column))
        where.append(ids)
    query = sql.SQL("SELECT {cols} FROM ({extract}\n) AS q WHERE {where}").format(
        cols=sql.SQL(", ").join(sql.SQL("q.{}").format(c) for c in cols),
        extract=sql.SQL(extract_sql(graph, spec)),
        where=sql.SQL(" AND ").join(where),
    )
    params = dict(scope.params, keys=list(scope.keys), buckets=list(buckets[1]) if buckets else [],
                  key_ids=[k for k in keys or () if k is not None])
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
    guard: DeleteGuard | None = None,
) -> SyncResult:
    """Sync one object for one district in one state transaction; return its counts.

    `guard` (default: 50 %, 10 rows, unconfirmed) refuses mass deletes and an empty source;
    selective syncs (a key scope) are not guarded: deleting the chosen records is their point."""
    spec = graph.spec(name)
    guard = guard or DeleteGuard()
    if scope.key_column and scope.key_column not in spec.column_names:
        raise SyncError(f"object {name!r} has no column {scope.key_column!r} to select keys by")
    result = SyncResult(object=name, district_id=district_id,
                        started_at=dt.datetime.now(dt.timezone.utc).isoformat())
    target = table(STATE_SCHEMA, spec)
    scope_sql, scope_params = scope_filter(spec, scope, "s")
    scope_params = [district_id, *scope_params]

    with ThreadPoolExecutor(max_workers=1) as pool, _sides(name, district_id) as conns:
        state, source = _connect(pool, conns, state_dsn, source_dsn)
        with _holding(state, source, state_dsn, source_dsn), _bad_data(graph, spec, scope, district_id, state, source):
            # One snapshot of the district for the digest and the copy that follows it.
            source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            source.read_only = True
            cur = state.cursor()
            lock_related(cur, graph, name, district_id)  # the transaction's settings, then its locks
            # A district's first load into the table is a plain insert: merging against an empty,
            # analysed table makes the planner re-scan the growing target once per row.
            fresh = not cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} s WHERE s.district_id = %s)")
                                    .format(target), [district_id]).fetchone()[0]

            # A resync (not a first load, not a selective one) first compares digests.
            known: digest.Digest | None = None
            wanted: Wanted | None = None
            held = 0
            if not fresh and not scope.key_column:
                known, held, wanted, scope_sql = _compare_digests(
                    graph, spec, scope, source, cur, target, scope_sql, scope_params, guard, pool)
                if wanted is not None and wanted.nothing:  # nothing differs: nothing to copy or write
                    source.rollback()
                    _count(result, known.rows, known.reasons)
                    state.commit()
                    return _finish(result)

            # A first load streams straight into the table when nothing needs staging: no parent
            # keys, or (where the FK triggers may be skipped) parents checked after the copy.
            previous = None
            if fresh and spec.foreign_keys and not scope.key_column:
                previous = _skip_fk_triggers(cur, target)
            if fresh and not scope.key_column and (not spec.foreign_keys or previous is not None):
                loaded = _load_direct(graph, spec, scope, source, cur, target, district_id)
                if loaded is not None:
                    source.rollback()
                    copied, refused = loaded
                    orphans = _drop_orphans(graph, spec, cur, target, district_id) if spec.foreign_keys else {}
                    _restore_role(cur, previous)
                    _count(result, copied + sum(refused.values()), {**refused, **orphans})
                    result.copied = copied
                    result.inserted = copied - sum(orphans.values())
                    state.commit()
                    return _finish(result)
                # duplicate or NULL keys: stage, refuse them, insert the rest
            _restore_role(cur, previous)

            _stage(graph, spec, scope, source, cur, wanted)
            source.rollback()  # the copy is done: release the district's snapshot now
            if fresh:
                result.inserted = _load_fresh(graph, spec, cur, target, district_id)
            else:
                _refuse_bad_keys(spec, cur)
                _check_parents(graph, spec, cur, district_id,
                               few=wanted is not None and wanted.keys is not None)
            staged = dict(cur.execute(sql.SQL("SELECT reject_reason, count(*) FROM {} GROUP BY 1").format(STAGE)))
            result.copied = rows = staged.pop(None, 0) + sum(staged.values())
            if known is not None:  # the digest counted the extract's refusals over every bucket
                added = {r: n for r, n in staged.items() if r in STATE_REASONS or r.startswith(PARENT_MISSING)}
                reasons = dict(known.reasons)
                for r, n in added.items():
                    reasons[r] = reasons.get(r, 0) + n
                _count(result, known.rows, reasons)
            else:
                _count(result, rows, staged)

            # Each merge counts the rows it would delete and lets the guard refuse before it
            # writes anything (deletes come first, their cascades with them).
            check = None if scope.key_column else _delete_check(guard, spec, district_id, held)
            if wanted is not None and wanted.keys is not None:  # rows under other key hashes are equal
                result.deleted, result.updated, result.inserted = _merge_rows(
                    cur, spec, target, scope_sql, scope_params, wanted, None if wanted.deleting is not None else check)
            elif wanted is not None:  # rows outside the copied buckets are known to be equal
                bucket_scope = sql.SQL("{} AND {} = ANY(%s)").format(scope_sql, digest.bucket_expr(spec, "s", wanted.count))
                result.deleted, result.updated, result.inserted = _merge_buckets(
                    cur, spec, target, bucket_scope, [*scope_params, wanted.buckets], check)
            elif not fresh:
                result.deleted, result.updated = _delete_and_update(cur, spec, target, scope_sql, scope_params, check)
                result.inserted = _insert_new(cur, spec, target, district_id)
            if not scope.key_column:  # a backstop: the merges counted these before deleting them
                _guard_deletes(guard, spec, district_id, result.deleted, held)
            state.commit()
    return _finish(result)


STATE_REASONS = ("null_key", "duplicate_key")  # refusals decided at the state, on the staged rows


def lock_keys(graph: Hierarchy, name: str, district_id: str) -> list[tuple[int, bool]]:
    """The advisory locks a sync of `name` takes: exclusive on the object, shared on each of its
    ancestors, all for this district, as (lock id, exclusive) sorted by lock id.

    Two syncs of related objects (one an ancestor of the other) conflict and run one after the
    other; siblings share their ancestors' locks and run side by side. Taking every lock up front
    in one global order means no two syncs ever wait on each other in a cycle: the foreign-key
    checks and cascades that used to deadlock (Enrollment's FK check against PersonIdentity's
    delete) only ever meet between related objects, which no longer overlap."""
    def key(obj: str) -> int:
        h = hashlib.blake2b(f"campus_sync:{district_id}:{obj}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "big", signed=True)
    wanted: dict[int, bool] = {}
    for obj in graph.ancestors(name):
        wanted.setdefault(key(obj), False)
    wanted[key(name)] = True
    return sorted(wanted.items())


def lock_related(cur: psycopg.Cursor, graph: Hierarchy, name: str, district_id: str) -> None:
    """Open the state transaction: its settings, then `lock_keys`' locks in their order.

    One statement, one round trip (a deep object has 6 locks; per-object round trips are what a
    district of 54 small objects pays for). A target list is evaluated left to right, so the
    locks are taken in the listed order. A killed task must not leave its statement running on
    the server holding locks (client_connection_check_interval); the digests group by up to
    65,536 buckets (x refusal reasons): ~8-30 MB of hash table whatever the row count, which
    with the default work_mem (4 MB) spilled to disk (0.8 s instead of 0.3 s for 1M rows)."""
    calls: list[sql.Composable] = [sql.SQL("set_config('client_connection_check_interval', '5s', true)"),
                                   sql.SQL("set_config('work_mem', {}, true)").format(sql.Literal(DIGEST_MEMORY))]
    ids = []
    for lock_id, exclusive in lock_keys(graph, name, district_id):
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        calls.append(sql.SQL("{}(%s)").format(sql.Identifier(fn)))
        ids.append(lock_id)
    cur.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(calls)), ids)


def _connect(pool: ThreadPoolExecutor, conns: dict[str, psycopg.Connection | None], state_dsn: str,
             source_dsn: str) -> tuple[psycopg.Connection, psycopg.Connection]:
    """Open both sides at once (a connection is a backend started: ~2 ms of a small object's
    ~5), or take them kept from the previous sync (`connections.reusing`), each registered under
    its side as soon as it is open, so a failed connect names its side; neither is left open
    when the other fails. Never server-side prepared statements (`prepare_threshold=None`): a
    reused connection repeats statements, and behind a transaction-mode pooler (PgBouncer) a
    statement prepared on one server connection is unknown on the next."""
    conns["state"] = conns["district"] = None
    kept = connections.take("district", source_dsn)  # here: the pool's thread sees no reusing() block
    pending = pool.submit(lambda: kept or psycopg.connect(source_dsn, prepare_threshold=None))
    try:
        conns["state"] = connections.take("state", state_dsn) or psycopg.connect(state_dsn, prepare_threshold=None)
    finally:
        try:
            conns["district"] = pending.result()
        except psycopg.OperationalError:
            if conns["state"] is not None:
                conns["state"].close()
            raise
        if conns["state"] is None:
            conns["district"].close()
    return conns["state"], conns["district"]


@contextmanager
def _holding(state: psycopg.Connection, source: psycopg.Connection, state_dsn: str,
             source_dsn: str) -> Iterator[None]:
    """Like `with state, source:` (commit when clean, roll back on an error, close), except that
    inside a `connections.reusing()` block cleanly ended connections are kept for the next sync."""
    clean = False
    try:
        yield
        clean = True
    finally:
        try:
            connections.give_back(source, "district", source_dsn, clean)
        finally:  # the state's locks must go whatever happened to the district's connection
            connections.give_back(state, "state", state_dsn, clean)


@contextmanager
def _sides(name: str, district_id: str) -> Iterator[dict[str, psycopg.Connection | None]]:
    """Errors name the side (state or district), the district and the object: a connection lost
    mid-COPY says which database went away. The caller registers each connection under its
    side before opening the next, so a failed connect names its side too. A connection that
    could not be opened or is broken is a `ConnectionFailedError` (retried); any other
    operational error (a statement cancelled, a deadlock) a `SyncError`, as before."""
    conns: dict[str, psycopg.Connection | None] = {}
    try:
        yield conns
    except SyncError:
        raise
    except psycopg.OperationalError as exc:
        broken = [k for k, c in conns.items() if c is None or c.broken]
        which = " and ".join(broken) if broken else "state or district"
        message = f"{which} database: syncing {name} for district {district_id}: {str(exc).strip()}"
        if broken or connection_failed(exc):
            raise ConnectionFailedError(message) from exc
        raise SyncError(message) from exc


def _data_error(exc: psycopg.Error, side: str) -> bool:
    """A data error: SQLSTATE class 22 (data exception) on either side, or class 23 (integrity
    constraint violation) at the district, where only the extract's own casts (a domain's
    check) can raise it. At the state class 23 may come from a concurrent writer: retried."""
    code = exc.sqlstate or ""
    return code.startswith("22") or (side == "district" and code.startswith("23"))


def _failed_side(state: psycopg.Connection, source: psycopg.Connection) -> str:
    """Which database raised the error being handled: the district when its transaction is the
    one aborted, else the state. (A district error in a `COPY` between them aborts the state's
    `COPY` too; a state error leaves the district's transaction alive; the engine's savepoints
    are all at the state.)"""
    return "district" if source.info.transaction_status == TransactionStatus.INERROR else "state"


_COPY_COLUMN = re.compile(r"\bCOPY [^,]+, line \d+, column ([^:]+):")
_QUOTED_COLUMN = re.compile(r'\bcolumn "([^"]+)"')


def _column_said(exc: psycopg.Error, spec: ObjectSpec) -> str | None:
    """The column PostgreSQL names for an error: its `column_name` field, the `COPY ... column
    x` of its context, or a `column "x"` in its message; as the hierarchy declares it."""
    diag = exc.diag
    said = diag.column_name
    for text, pattern in ((diag.context, _COPY_COLUMN), (diag.message_primary, _QUOTED_COLUMN)):
        if not said and text and (found := pattern.search(text)):
            said = found.group(1).strip()
    if not said:
        return None
    return next((c for c in spec.column_names if c.lower() == said.lower()), said)


PROBE_SECONDS = 60.0  # at most this long spent finding the column of a district data error


def _probe_columns(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
                   sqlstate: str | None) -> list[str]:
    """The extract's column(s) whose value raises `sqlstate`, read one at a time as the engine
    reads them (cast to the declared type), when PostgreSQL does not say which: each read
    evaluates only that column's expression. None found when every column fails alike (the
    error is in what all rows pass through: a join, a filter), none does, or the time is up."""
    types = dict(spec.columns)
    columns = [*spec.column_names, "reject_reason"]
    deadline = time.monotonic() + PROBE_SECONDS
    failing = []
    try:
        source.rollback()
        query = sql.SQL(source_query(graph, spec, scope, source))
        for column in columns:
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            value = (digest.cast_declared("d", column, types[column]) if column in types
                     else sql.SQL("d.{}").format(ident(column)))
            try:
                source.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(left * 1000) + 1}ms",))
                source.execute(sql.SQL("SELECT count({}) FROM ({}) AS d").format(value, query))
            except psycopg.errors.QueryCanceled:
                return []
            except psycopg.Error as exc:
                if exc.sqlstate != sqlstate:
                    return []
                failing.append(column)
            source.rollback()
    except psycopg.Error:
        return []
    return failing if len(failing) < len(columns) else []


@contextmanager
def _bad_data(graph: Hierarchy, spec: ObjectSpec, scope: Scope, district_id: str, state: psycopg.Connection,
              source: psycopg.Connection) -> Iterator[None]:
    """A data error (`_data_error`) becomes a BadDataError naming the side it was raised on,
    the district, the object and the column: the column PostgreSQL names, or, at the district
    where it names none (a cast in the extract, or of the extract's value to its declared
    type), the ones `_probe_columns` finds. Inside `_holding`: both connections still open."""
    try:
        yield
    except psycopg.Error as exc:
        side = _failed_side(state, source)
        if not _data_error(exc, side):
            raise
        said_column = _column_said(exc, spec)
        columns = [said_column] if said_column else []
        if not columns and side == "district":
            columns = _probe_columns(graph, spec, scope, source, exc.sqlstate)
        where = f"column{'s' * (len(columns) > 1)} {', '.join(columns)}: " if columns else ""
        said = exc.diag.message_primary or str(exc).strip()
        raise BadDataError(
            f"{side} database: syncing {spec.name} for district {district_id}: {where}{said} "
            f"(SQLSTATE {exc.sqlstate}, a data error: not retried, the same rows fail on every try); "
            f"correct the value at the district or the extract include/sql/{spec.sql}; nothing was written") from exc


def _guard_deletes(guard: DeleteGuard, spec: ObjectSpec, district_id: str, deleted: int, held: int,
                   at_least: bool = False) -> None:
    """Raise MassDeleteError when deleting `deleted` (or, `at_least`, more) of the `held` rows
    the state holds in scope is a mass delete. Called with the count before anything is
    deleted: a refusal then costs a count, not a delete, its cascades and a rollback."""
    if guard.confirmed or deleted < max(guard.min_rows, 1) or deleted <= guard.max_share * held:
        return
    raise MassDeleteError(
        f"refused: resync of {spec.name} for district {district_id} would delete {deleted} of the "
        f"{held} rows the state holds ({'at least; ' * at_least}{deleted * 100 // max(held, 1)} % > "
        f"{guard.max_share:.0%}); nothing was written; {CONFIRM_HINT}")


DeleteCheck = Callable[[int], None]  # given the rows a merge is about to delete: raises to refuse


def _delete_check(guard: DeleteGuard, spec: ObjectSpec, district_id: str, held: int) -> DeleteCheck | None:
    """The guard as a merge calls it, with the count of rows it is about to delete; None when
    it cannot refuse (confirmed, or the state holds fewer rows than it refuses): no count."""
    if guard.confirmed or held < max(guard.min_rows, 1):
        return None
    return lambda deleted: _guard_deletes(guard, spec, district_id, deleted, held)


@contextmanager
def _reading(spec: ObjectSpec) -> Iterator[None]:
    """An extract that does not fit the district's tables fails naming its file."""
    try:
        yield
    except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable) as exc:
        raise SyncError(f"extract query include/sql/{spec.sql} for {spec.name!r}: {exc}".strip()) from exc


def _compare_digests(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
                     cur: psycopg.Cursor, target: sql.Composable, scope_sql: sql.Composable,
                     scope_params: list, guard: DeleteGuard, pool: ThreadPoolExecutor
                     ) -> tuple[digest.Digest, int, Wanted | None, sql.Composable]:
    """Compare both sides, each query running at the district while its twin runs at the state.

    First the totals (one pass, no grouping: an unchanged object costs just that); then, for
    an integer key, the keys that differ (`keydiff`); for any other key the per-bucket digests,
    then, for the buckets that differ, a filtered pass listing their rows, so only rows that
    really differ are copied. Returns the district's digest (its row and
    refusal counts), the rows the state holds in scope, what to copy (`Wanted`; None:
    everything) and the state scope to merge in: refused rows the state keeps are taken out of it by key (temp table
    `campus_kept`), so they neither make a bucket differ nor get deleted.

    The delete guard refuses here, before anything is copied, when the rows to delete are
    already known: exactly from the key diff, or, before a full copy, at least the rows the
    state holds beyond the district's accepted ones (each accepted row keeps at most one)."""
    district_id = scope_params[0]
    query = source_query(graph, spec, scope, source)
    at_district = pool.submit(digest.district_totals, source, spec, query)
    held, state_xor = digest.state_totals(cur.connection, spec, target, scope_sql, scope_params)
    with _reading(spec):
        rows, accepted, district_xor, kept, reasons = at_district.result()
    comparable = held
    if kept and held:
        scope_sql = _exclude_kept(graph, spec, scope, source, cur, scope_sql)
        comparable, state_xor = digest.state_totals(cur.connection, spec, target, scope_sql, scope_params)
    if accepted == 0 and comparable and not guard.confirmed:
        raise EmptySourceError(
            f"refused: district {district_id} has no accepted {spec.name} rows ({rows} in scope, "
            f"all refused or none) but the state holds {comparable}; nothing was written; {CONFIRM_HINT}")
    counted = digest.Digest(1)  # the district's counts, without buckets
    counted.rows, counted.reasons = rows, reasons
    if (accepted, district_xor) == (comparable, state_xor):  # nothing differs
        return counted, held, Wanted(1, []), scope_sql
    if digest.integer_key(spec):  # one integer key column: the keys that differ, exactly
        found = keydiff.differing_keys(source, cur, spec, query, target, scope_sql, scope_params, pool,
                                       max(accepted, comparable),
                                       min((accepted + comparable) // 2, digest.ROWS_MAX),
                                       lambda: _reading(spec))
        if found is None:  # most of it differs: copying everything is cheaper
            _guard_deletes(guard, spec, district_id, comparable - accepted, held, at_least=True)
            return counted, held, None, scope_sql
        _guard_deletes(guard, spec, district_id, len(found.gone), held)
        return counted, held, Wanted(0, [], found.keys, found.gone, found.added, len(found.gone)), scope_sql
    source.execute("SELECT set_config('work_mem', %s, true)", (DIGEST_MEMORY,))
    buckets = digest.bucket_count(max(accepted, comparable))
    at_district = pool.submit(digest.district_digest, source, spec, query, buckets)
    at_state = digest.state_digest(cur.connection, spec, target, scope_sql, scope_params, buckets)
    with _reading(spec):
        district = at_district.result()
    district.rows, district.reasons = rows, reasons  # same snapshot as the totals
    changed = district.changed(at_state)
    listed = sum(district.counts[b] + at_state.counts[b] for b in changed)
    if listed > (accepted + comparable) // 2:  # most of it differs: copying everything is cheaper
        _guard_deletes(guard, spec, district_id, comparable - accepted, held, at_least=True)
        return district, held, None, scope_sql
    if listed > 2 * digest.ROWS_MAX:
        return district, held, Wanted(buckets, changed), scope_sql
    rows_query = source_query(graph, spec, scope, source, (buckets, changed))
    with _reading(spec):
        keys, ctids = digest.differing(source, cur, spec, rows_query, target, scope_sql, scope_params,
                                       buckets, changed)
    return district, held, Wanted(buckets, changed, keys, ctids), scope_sql


def _exclude_kept(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
                  cur: psycopg.Cursor, scope_sql: sql.Composable) -> sql.Composable:
    """Copy the keys of the district's refused-but-kept rows into `campus_kept` and return the
    state scope without them."""
    types = dict(spec.columns)
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(KEPT, sql.SQL(", ").join(
        sql.SQL("{} {}").format(ident(k), sql.SQL(COLUMN_TYPES[types[k]])) for k in spec.key)))
    keys = sql.SQL(", ").join(sql.SQL("d.{}").format(ident(k)) for k in spec.key)
    query = sql.SQL("COPY (SELECT DISTINCT {} FROM ({}) AS d WHERE {}) TO STDOUT").format(
        keys, sql.SQL(source_query(graph, spec, scope, source)), digest.kept_expr(spec, "d"))
    with _reading(spec):
        kept = copy_across(source, query, cur, sql.SQL("COPY {} FROM STDIN").format(KEPT))
    _analyze(cur, KEPT, kept)
    return sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {} k WHERE {})").format(
        scope_sql, KEPT, _key_match(spec, "s", "k"))


ANALYZE_MIN_ROWS = 5000  # below this a temp table's missing statistics cost less than ANALYZE


def _analyze(cur: psycopg.Cursor, temp: sql.Identifier, rows: int) -> None:
    """ANALYZE a temp table the next statements join, when it is big enough to matter.

    Without statistics the planner takes `reject_reason IS NULL` to keep 0.5 % of the rows and
    probes the state's index once per staged row (1.5 s instead of 0.5 s for a parent check of
    1M rows); for a few thousand rows those probes are the right plan anyway, and ANALYZE
    would be a fixed cost on every small object."""
    if rows >= ANALYZE_MIN_ROWS:
        cur.execute(sql.SQL("ANALYZE {}").format(temp))


def _stage(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
           cur: psycopg.Cursor, wanted: Wanted | None) -> int:
    """Stream the district's rows (all in scope, the wanted buckets or key hashes) into a temp
    table; return how many."""
    col_defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(ident(c), sql.SQL(COLUMN_TYPES[t])) for c, t in spec.columns
    )
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}, reject_reason text) ON COMMIT DROP").format(STAGE, col_defs))
    if wanted is None:
        query = source_query(graph, spec, scope, source)
    elif wanted.keys is not None:  # (no bucket filter as well: the two together run 20x slower)
        query = source_query(graph, spec, scope, source, keys=wanted.keys)
    else:
        query = source_query(graph, spec, scope, source, (wanted.count, wanted.buckets))
    copy_in = sql.SQL("COPY {} ({}, reject_reason) FROM STDIN").format(
        STAGE, sql.SQL(", ").join(ident(c) for c in spec.column_names))
    with _reading(spec):
        rows = copy_across(source, sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(query)), cur, copy_in)
    _analyze(cur, STAGE, rows)
    return rows


def _load_direct(graph: Hierarchy, spec: ObjectSpec, scope: Scope, source: psycopg.Connection,
                 cur: psycopg.Cursor, target: sql.Composable, district_id: str
                 ) -> tuple[int, dict[str, int]] | None:
    """A district's first load: COPY the accepted rows straight into the state table (no
    staging, no second write: COPY's bulk insert is ~2x an INSERT ... SELECT from a stage). The
    refused ones are counted by reason at the district, in the same snapshot, without leaving
    it. Returns (rows copied, refusals). None when a key is duplicated or NULL: the caller
    stages instead, which refuses those rows. A child object comes here only with its FK
    triggers off for the transaction, and `_drop_orphans` then checks its parents."""
    query = source_query(graph, spec, scope, source)
    with _reading(spec):
        reasons = digest.district_reasons(source, query)
    extract = sql.SQL(query)
    cols = sql.SQL(", ").join(ident(c) for c in spec.column_names)
    rows = sql.SQL("COPY (SELECT {}, {} FROM ({}) AS d WHERE d.reject_reason IS NULL) TO STDOUT").format(
        sql.Literal(district_id), sql.SQL(", ").join(sql.SQL("d.{}").format(ident(c)) for c in spec.column_names),
        extract)
    copy_in = sql.SQL("COPY {} (district_id, {}) FROM STDIN").format(target, cols)
    try:
        with cur.connection.transaction():  # a savepoint: undo just this COPY on a bad key
            loaded = copy_across(source, rows, cur, copy_in)
    except (psycopg.errors.UniqueViolation, psycopg.errors.NotNullViolation):
        return None
    return loaded, reasons


def _drop_orphans(graph: Hierarchy, spec: ObjectSpec, cur: psycopg.Cursor, target: sql.Composable,
                  district_id: str) -> dict[str, int]:
    """After a direct first load of a child object (FK triggers off): lock the parent rows the
    new rows refer to FOR KEY SHARE, as the triggers would, then delete the new rows whose
    parent is not at the state, counted as `parent_missing:<Parent>` per foreign key (sorted,
    so a row missing two parents counts under the first, as in `_check_parents`).

    All in the load's transaction: the rows without a parent are never committed, so no one
    ever sees them, and the state's integrity is what the FK triggers guarantee. The locks
    come first, so a delete from outside the engine either committed before them (and its
    parent's rows are found missing here) or waits for this commit and cascades. The district
    had no rows in the table before this transaction, so its rows there are the new ones, and
    none has children yet. A foreign key whose every referenced parent was locked needs no
    anti-join (one count instead)."""
    missing: dict[str, int] = {}
    new_rows = sql.SQL("{} t WHERE t.district_id = %s").format(target)
    for fk in spec.foreign_keys:  # sorted by column
        parent = table(STATE_SCHEMA, graph.spec(fk.target))
        if _lock_referenced(graph, fk, cur, district_id, new_rows, "t", [district_id]):
            continue
        gone = cur.execute(sql.SQL(
            "DELETE FROM {target} t WHERE t.district_id = %s AND t.{col} IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM {parent} p WHERE p.district_id = %s AND p.{pcol} = t.{col})"
        ).format(target=target, col=ident(fk.column), parent=parent, pcol=ident(fk.target_column)),
            (district_id, district_id)).rowcount
        if gone:
            missing[f"{PARENT_MISSING}{fk.target}"] = gone
    return missing


def _load_fresh(graph: Hierarchy, spec: ObjectSpec, cur: psycopg.Cursor, target: sql.Composable,
                district_id: str) -> int:
    """A district's first load from the stage: refuse, check parents, insert; the rows inserted.

    The district has no rows in the table yet, so a duplicated key can only be a key staged
    twice, and the primary key finds it as the insert runs: the common case (no duplicates)
    skips the grouping pass over the stage, and a duplicate rolls the attempt back to a
    savepoint and refuses the duplicates first, as a resync does. (Checking the parents inside
    the insert instead, a hashed subplan per row, measured 12 % slower than this anti-join.)"""
    try:
        with cur.connection.transaction():
            _refuse_null_keys(spec, cur)
            return _insert_checked(graph, cur, spec, target, district_id)
    except psycopg.errors.UniqueViolation:
        pass
    _refuse_bad_keys(spec, cur)
    return _insert_checked(graph, cur, spec, target, district_id)


def _insert_checked(graph: Hierarchy, cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable,
                    district_id: str) -> int:
    """Check the accepted staged rows' parents (`_check_parents`), insert the rest.

    The foreign keys' per-row triggers (one query and one row lock per row: ~70 % of a child
    object's first load) re-check what that anti-join checks, so they are skipped for this
    one statement where the role may (`session_replication_role`: superuser, or
    `GRANT SET ON PARAMETER session_replication_role` on PostgreSQL 15+); the constraints stay
    on the tables and every other statement keeps them. What the triggers guaranteed is kept
    by two things: no sync that could delete a parent row of this district runs until this
    transaction ends (`lock_related` holds their advisory locks), and the parent rows the
    staged rows refer to are locked FOR KEY SHARE, in one statement per foreign key, as the
    triggers lock them row by row, *before* they are checked: a delete from outside the engine
    (a DBA, a script) that comes after the check waits for this commit and then cascades to
    the new rows instead of orphaning them (locked after the check, a delete in between left
    an orphan). A foreign key whose every referenced parent was found and locked needs no
    anti-join. Without the privilege the triggers run as before."""
    if not spec.foreign_keys:
        return _insert(cur, spec, target, district_id)
    previous = _skip_fk_triggers(cur, target)
    present = _lock_parents(graph, spec, cur, district_id) if previous is not None else set()
    _check_parents(graph, spec, cur, district_id, checked=present)
    inserted = _insert(cur, spec, target, district_id)
    _restore_role(cur, previous)
    return inserted


def _lock_parents(graph: Hierarchy, spec: ObjectSpec, cur: psycopg.Cursor, district_id: str) -> set[str]:
    """Lock FOR KEY SHARE the state's parent rows the accepted staged rows refer to (what the
    foreign-key triggers would lock), one statement per foreign key; return the foreign-key
    columns whose every referenced parent was there (locked as many as distinct keys staged)."""
    accepted = sql.SQL("{} g WHERE g.reject_reason IS NULL").format(STAGE)
    return {fk.column for fk in spec.foreign_keys  # sorted by column
            if _lock_referenced(graph, fk, cur, district_id, accepted, "g", [])}


def _lock_referenced(graph: Hierarchy, fk: ForeignKey, cur: psycopg.Cursor, district_id: str, rows: sql.Composable,
                     alias: str, params: list) -> bool:
    """Lock FOR KEY SHARE the parent rows of `fk` that `rows` (`<table> <alias> WHERE ...`)
    refer to; True when every distinct key referenced was there (as many locked)."""
    col = sql.SQL("{}.{}").format(sql.Identifier(alias), ident(fk.column))
    locked, referenced = cur.execute(sql.SQL(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM {parent} p WHERE p.district_id = %s AND p.{pcol} IN"
        " (SELECT {col} FROM {rows}) FOR KEY SHARE OF p) AS locked), (SELECT count(DISTINCT {col}) FROM {rows})"
    ).format(parent=table(STATE_SCHEMA, graph.spec(fk.target)), pcol=ident(fk.target_column), col=col, rows=rows),
        [district_id, *params, *params]).fetchone()
    return locked == referenced


def _skip_fk_triggers(cur: psycopg.Cursor, target: sql.Composable) -> str | None:
    """Switch this transaction to `session_replication_role = replica` and return the previous
    value; None (nothing switched) when the role may not set it, or when the table has a
    trigger or rule of its own (an audit trigger a deployment added must still fire)."""
    name = target.as_string(cur.connection)
    try:
        with cur.connection.transaction():
            row = cur.execute(
                "SELECT current_setting('session_replication_role'),"
                " set_config('session_replication_role', 'replica', true) FROM pg_class c"
                " WHERE c.oid = %s::regclass AND NOT c.relhasrules AND NOT EXISTS"
                " (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)", (name,)).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return row[0] if row else None


def _restore_role(cur: psycopg.Cursor, previous: str | None) -> None:
    """Undo `_skip_fk_triggers` (nothing when it switched nothing): the FK triggers fire again."""
    if previous is not None:
        cur.execute("SELECT set_config('session_replication_role', %s, true)", (previous,))


def _refuse_null_keys(spec: ObjectSpec, cur: psycopg.Cursor) -> None:
    """Refuse staged rows with a NULL key (`null_key`): they can never be at the state."""
    null = sql.SQL(" OR ").join(sql.SQL("g.{} IS NULL").format(ident(k)) for k in spec.key)
    cur.execute(sql.SQL("UPDATE {} g SET reject_reason = 'null_key' WHERE g.reject_reason IS NULL AND ({})")
                .format(STAGE, null))


def _refuse_bad_keys(spec: ObjectSpec, cur: psycopg.Cursor) -> None:
    """Refuse staged rows with a NULL key (`null_key`) and every accepted row of a key the
    district has more than once (`duplicate_key`): loading one of them would flip the state
    between versions on every resync."""
    _refuse_null_keys(spec, cur)
    keys = sql.SQL(", ").join(ident(k) for k in spec.key)
    cur.execute(sql.SQL(
        "UPDATE {stage} g SET reject_reason = 'duplicate_key' WHERE g.reject_reason IS NULL"
        " AND ({keys}) IN (SELECT {keys} FROM {stage} GROUP BY {keys} HAVING count(*) > 1)"
    ).format(stage=STAGE, keys=keys))


def _check_parents(graph: Hierarchy, spec: ObjectSpec, cur: psycopg.Cursor, district_id: str,
                   few: bool = False, checked: set[str] = frozenset()) -> None:
    """Refuse staged rows whose parent is not at the state, one reason per parent object.

    `few`: the stage holds only the rows that changed (the row step): probing the parent's
    primary key per staged row beats the hash anti-join over the whole parent table the planner
    picks when it costs every page read as a disk seek (10,000 rows against 1M parents: 0.11 s
    instead of 0.45 s), as in `_merge_rows`. `checked`: foreign-key columns already known to
    have every parent (`_lock_parents`)."""
    if few and spec.foreign_keys:
        cur.execute("SET LOCAL random_page_cost = 1.1")
    for fk in spec.foreign_keys:  # sorted by column
        if fk.column in checked:
            continue
        parent = graph.spec(fk.target)
        cur.execute(sql.SQL(
            "UPDATE {stage} g SET reject_reason = %s WHERE g.reject_reason IS NULL"
            " AND g.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p"
            " WHERE p.district_id = %s AND p.{pcol} = g.{col})"
        ).format(stage=STAGE, col=ident(fk.column), parent=table(STATE_SCHEMA, parent),
                 pcol=ident(fk.target_column)), (f"{PARENT_MISSING}{fk.target}", district_id))
    if few and spec.foreign_keys:
        cur.execute("RESET random_page_cost")


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


def _insert_new(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable, district_id: str) -> int:
    """Insert the accepted staged rows whose key the state does not hold yet for the district."""
    return _insert(cur, spec, target, district_id, sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {} s WHERE s.district_id = %s AND {})").format(target, _key_match(spec)),
        [district_id])


def _gone(spec: ObjectSpec, alias: str) -> sql.Composable:
    """A state row (alias `alias`) the district no longer has: no staged row with its key is
    accepted or refused-but-kept (a row the district still has is never deleted because a rule
    now refuses it, unless the object lists that reason in `delete_refused`)."""
    return sql.SQL("NOT EXISTS (SELECT 1 FROM {stage} g WHERE (g.reject_reason IS NULL OR {kept}) AND {match})").format(
        stage=STAGE, kept=digest.kept_expr(spec, "g"), match=_key_match(spec, alias, "g"))


def _update(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable, district_id: str) -> int:
    """Update state rows whose accepted staged row differs, by the exact canonical test."""
    non_key = [c for c in spec.column_names if c not in spec.key]
    if not non_key:
        return 0
    return cur.execute(sql.SQL(
        "UPDATE {target} s SET {assign}, synced_at = now() FROM {stage} g"
        " WHERE g.reject_reason IS NULL AND s.district_id = %s AND {match} AND {differ}"
    ).format(
        target=target, stage=STAGE, match=_key_match(spec), differ=digest.rows_differ(spec, "s", "g"),
        assign=sql.SQL(", ").join(sql.SQL("{0} = g.{0}").format(ident(c)) for c in non_key),
    ), [district_id]).rowcount


def _delete(cur: psycopg.Cursor, target: sql.Composable, where: sql.Composable, params: Sequence,
            check: DeleteCheck | None) -> int:
    """Delete the state rows (alias `s`) `where` says. With a `check` (the delete guard),
    count them first and let it refuse before anything is deleted; none to delete, no DELETE."""
    if check is not None:
        counted = cur.execute(sql.SQL("SELECT count(*) FROM {} s WHERE {}").format(target, where), params)
        deleting = counted.fetchone()[0]
        check(deleting)
        if not deleting:
            return 0
    return cur.execute(sql.SQL("DELETE FROM {} s WHERE {}").format(target, where), params).rowcount


def _delete_and_update(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable,
                       scope_sql: sql.Composable, scope_params: list,
                       check: DeleteCheck | None = None) -> tuple[int, int]:
    """Delete state rows the district no longer has (in scope; `check`ed first); update rows
    that differ."""
    deleted = _delete(cur, target, sql.SQL("{} AND {}").format(scope_sql, _gone(spec, "s")), scope_params, check)
    return deleted, _update(cur, spec, target, scope_params[0])


def _merge_buckets(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable,
                   scope_sql: sql.Composable, scope_params: list,
                   check: DeleteCheck | None = None) -> tuple[int, int, int]:
    """Merge the copied buckets only. The state's keys in those buckets are read once into a
    temp table; delete, update and insert then work through small joins and the primary key
    instead of each passing over the whole state table. Staged rows equal to the state's (the
    exact canonical test) are dropped first, so the update touches only real changes. The
    keys to delete are counted in that temp table and `check`ed before the delete."""
    district_id = scope_params[0]
    cur.execute(sql.SQL("CREATE TEMP TABLE {held} ON COMMIT DROP AS SELECT {keys}"
                        " FROM {target} s WHERE {scope}").format(
        held=HELD, keys=sql.SQL(", ").join(sql.SQL("s.{}").format(ident(k)) for k in spec.key),
        target=target, scope=scope_sql), scope_params)
    cur.execute(sql.SQL("ANALYZE {}").format(HELD))
    deleting = None
    if check is not None:  # each key held is one state row (the primary key)
        deleting = cur.execute(sql.SQL("SELECT count(*) FROM {} h WHERE {}").format(HELD, _gone(spec, "h"))
                               ).fetchone()[0]
        check(deleting)
    deleted = 0 if deleting == 0 else cur.execute(sql.SQL(
        "DELETE FROM {target} s USING {held} h WHERE s.district_id = %s AND {sh} AND {gone}"
    ).format(target=target, held=HELD, sh=_key_match(spec, "s", "h"), gone=_gone(spec, "s")),
        [district_id]).rowcount
    cur.execute(sql.SQL(
        "DELETE FROM {stage} g USING {held} h, {target} s WHERE g.reject_reason IS NULL AND {gh}"
        " AND s.district_id = %s AND {sh} AND NOT {differ}"
    ).format(stage=STAGE, held=HELD, target=target, gh=_key_match(spec, "g", "h"),
             sh=_key_match(spec, "s", "h"), differ=digest.rows_differ(spec, "s", "g")), [district_id])
    cur.execute(sql.SQL("ANALYZE {}").format(STAGE))
    updated = _update(cur, spec, target, district_id)
    inserted = _insert(cur, spec, target, district_id, sql.SQL("NOT EXISTS (SELECT 1 FROM {} h WHERE {})")
                       .format(HELD, _key_match(spec, "g", "h")))
    return deleted, updated, inserted


def _merge_rows(cur: psycopg.Cursor, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                scope_params: list, wanted: Wanted, check: DeleteCheck | None = None) -> tuple[int, int, int]:
    """Merge the rows under the key hashes that differ: the staged rows are all of the
    district's rows under them, the state's are at `wanted.ctids` (integer keys, or ctids).
    Every statement goes through the primary key or those ctids, never over the whole table;
    the rows to delete are counted and `check`ed first (the key diff has counted its own).
    (The ctids hold: no other sync
    of this object and district, and no delete of a parent, can run until commit:
    `lock_related`; the delete also checks the key hash and the scope again.)"""
    district_id = scope_params[0]
    deleted = 0
    # The planner, costing every page read as a disk seek, scans the whole table rather than
    # probe it a few thousand times (0.9 s instead of 0.05 s for 10,000 of 1M rows). These
    # statements touch only the rows listed, whose pages the digest has just read.
    cur.execute("SET LOCAL random_page_cost = 1.1")
    if wanted.ctids:
        column = digest.integer_key(spec)
        where = (sql.SQL("s.{} = ANY(CAST(%s AS bigint[]))").format(ident(column)) if column
                 else sql.SQL("s.ctid = ANY(CAST(%s AS tid[]))"))
        deleted = _delete(cur, target, sql.SQL("{where} AND {scope} AND {key} = ANY(CAST(%s AS bigint[])) AND {gone}")
                          .format(where=where, scope=scope_sql, key=digest.key_id_expr(spec, "s"), gone=_gone(spec, "s")),
                          [wanted.ctids, *scope_params, wanted.keys], check)
    updated = _update(cur, spec, target, district_id)
    inserted = 0 if wanted.added == 0 else _insert_new(cur, spec, target, district_id)
    cur.execute("RESET random_page_cost")
    return deleted, updated, inserted


def sync_objects(graph: Hierarchy, names: Sequence[str], **kwargs) -> list[SyncResult]:
    """Sync several objects in the order given (callers pass a plan's run order), on the same
    two connections (`connections.reusing`)."""
    with connections.reusing():
        return [sync_object(graph, n, **kwargs) for n in names]
