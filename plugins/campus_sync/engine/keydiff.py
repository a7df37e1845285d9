"""Exact key diff: which keys differ, from each side's (key, row hash) of every accepted row.

For an object keyed by one int or bigint column (most of them), once the totals differ the
resync needs the keys whose rows differ. Each side packs the (key, row hash) pairs of a key
range into one bytea (`string_agg` of `int8send`: one value, no per-row protocol overhead) and
numpy sorts and compares the two. For 1M rows here (4 ranges, both sides alongside): ~0.5 s
in all, against ~1.0 s for bucket digests, a listing of the differing buckets and its compare
(`digest.differing`), which other keys still use.

Memory stays bounded: the key space is cut into ranges of ~`PART_ROWS` rows (at quantiles of
a page sample of the state's keys, so skewed keys still split evenly, else at equal widths
between the two sides' min and max keys; each range is one query per side, which the
district's index on the key finds, or a scan that hashes only the range's rows), so about
4 MB of pairs per side are held at a time, whatever the row count. Rows the state does not
have yet (a district's mass addition) are not in the sample: their range may come out larger,
the result the same.

The comparison is exact up to the row hash (see `digest`): a key is the same on both sides
when the district has it once and its row hash equals the state's. A key the district has
twice is listed, to be staged and refused as `duplicate_key`; a NULL key is listed as None, to
be staged and refused as `null_key`.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import psycopg
from psycopg import sql

from campus_sync.engine.digest import integer_key, stored_hash
from campus_sync.engine.schema import cast_declared, row_hash_expr
from campus_sync.hierarchy import ObjectSpec

PART_ROWS = 250_000  # rows per side per key range: 4 MB of pairs each (bench engine peak RSS ~100 MB at 1M and 3M rows, 50 MB with buckets)


def _pairs(key: sql.Composable, row_hash: sql.Composable) -> sql.Composable:
    """One bytea of big-endian (key, row hash) pairs, 16 bytes a row; NULL keys left out
    (`string_agg` skips the NULL that `int8send(NULL) || ...` gives)."""
    return sql.SQL("coalesce(string_agg(int8send(CAST({} AS bigint)) || int8send({}), ''::bytea), ''::bytea)").format(
        key, row_hash)


def _in_range(column: sql.Composable, bounds: tuple[int, int] | None) -> sql.Composable:
    """`lo <= column <= hi` on the key (`_key`; bigint constants: an int column's index still
    serves the comparison), or TRUE for the whole key space."""
    if bounds is None:
        return sql.SQL("TRUE")
    lo, hi = bounds
    return sql.SQL("{c} >= CAST({lo} AS bigint) AND {c} <= CAST({hi} AS bigint)").format(
        c=column, lo=sql.Literal(lo), hi=sql.Literal(hi))


def _key(spec: ObjectSpec, alias: str) -> sql.Composable:
    """The key column cast to its declared type (an extract may return an int key as text or
    numeric; for a column already of that type the cast is dropped and its index still serves)."""
    column = integer_key(spec)
    return cast_declared(alias, column, dict(spec.columns)[column])


def district_pairs(conn: psycopg.Connection, spec: ObjectSpec, source_query: str,
                   bounds: tuple[int, int] | None, nulls: bool) -> tuple[bytes, int]:
    """(pairs, NULL keys counted when `nulls`) of the district's accepted rows of
    `source_query` in `bounds`. A NULL key is in no range: one range's query counts them."""
    column = _key(spec, "d")
    within = _in_range(column, bounds)
    if nulls and bounds is not None:
        within = sql.SQL("({} OR {} IS NULL)").format(within, column)
    query = sql.SQL(
        "SELECT {pairs}, count(*) FILTER (WHERE {col} IS NULL) FROM ({source}) AS d"
        " WHERE d.reject_reason IS NULL AND {within}"
    ).format(pairs=_pairs(column, row_hash_expr(spec, "d")), col=column, source=sql.SQL(source_query), within=within)
    pairs, null_keys = conn.execute(query, binary=True).fetchone()
    return bytes(pairs), null_keys


def state_pairs(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                scope_params: list, bounds: tuple[int, int] | None) -> bytes:
    """The pairs of the state rows in scope (alias `s`) in `bounds`, from their stored hash."""
    column = _key(spec, "s")
    query = sql.SQL("SELECT {pairs} FROM {target} s WHERE {scope} AND {within}").format(
        pairs=_pairs(column, stored_hash("s")), target=target, scope=scope_sql, within=_in_range(column, bounds))
    return bytes(conn.execute(query, scope_params, binary=True).fetchone()[0])


def _sorted(packed: bytes):
    """(keys, row hashes) of a pair buffer as big-endian int64 views of it (no copy), sorted by
    key. Rows mostly come in key order (tables loaded in key order): then nothing is sorted."""
    import numpy as np  # here, not at import: a task process that never diffs keys never loads it

    pairs = np.frombuffer(packed, ">i8").reshape(-1, 2)
    keys, hashes = pairs[:, 0], pairs[:, 1]
    if len(keys) > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
        order = np.argsort(keys, kind="stable")
        keys, hashes = keys[order], hashes[order]
    return keys, hashes


class Diff(NamedTuple):
    """What differs: `keys` (added, gone, changed or duplicated at the district; None for NULL
    keys), `gone` (the state's keys the district does not have) and `added` (how many keys the
    district has once that the state does not: none, and the merge need not try to insert)."""

    keys: list
    gone: list[int]
    added: int


def compare(district: bytes, state: bytes) -> Diff:
    """The `Diff` of two packed pair buffers (keys sorted)."""
    import numpy as np

    dk, dh = _sorted(district)
    sk, sh = _sorted(state)
    # the state's keys are unique (its primary key): equal key arrays are the same keys, once each
    if np.array_equal(dk, sk):
        return Diff(dk[dh != sh].astype(np.int64).tolist(), [], 0)  # changed rows only
    once = np.ones(len(dk), dtype=bool)
    if len(dk) > 1:
        twice = dk[1:] == dk[:-1]
        once[1:] &= ~twice
        once[:-1] &= ~twice
    same = np.zeros(len(dk), dtype=bool)
    held = np.zeros(len(dk), dtype=bool)
    if len(sk):
        at = np.minimum(np.searchsorted(sk, dk), len(sk) - 1)
        held = sk[at] == dk
        same = once & held & (sh[at] == dh)
    gone = sk
    if len(dk):
        at = np.minimum(np.searchsorted(dk, sk), len(dk) - 1)
        gone = sk[dk[at] != sk]
    return Diff(np.union1d(dk[~same], gone).astype(np.int64).tolist(), gone.astype(np.int64).tolist(),
                int(np.count_nonzero(once & ~held)))


def key_bounds(district: tuple[int | None, int | None], state: tuple[int | None, int | None],
               parts: int, cuts: list[int] | None = None) -> list[tuple[int, int]]:
    """Consecutive ranges [lo, hi] covering every key between both sides' (min, max)
    (inclusive: the last may end at bigint's maximum): split at `cuts` (keys where a range
    starts, from the state's distribution: `_state_cuts`) when given, else into `parts`
    ranges of equal width."""
    sides = [side for side in (district, state) if side[0] is not None]
    if not sides:
        return [(0, 0)]
    lo, end = min(s[0] for s in sides), max(s[1] for s in sides) + 1  # Python ints: no overflow
    if cuts:
        edges = [lo, *sorted({c for c in cuts if lo < c < end}), end]
    else:
        edges = [lo + (end - lo) * i // parts for i in range(parts)] + [end]
    return [(a, b - 1) for a, b in zip(edges, edges[1:]) if b > a]


SAMPLE_PAGES = 1000  # pages the key sample reads: ~80,000 rows of PersonIdentity, 12 ms for 1M here; ranges within ~6 %


def _state_cuts(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                scope_params: list, parts: int) -> list[int]:
    """Keys that cut the state's rows in scope into `parts` ranges of about equal row counts,
    from a sample of the table's pages (TABLESAMPLE SYSTEM: ~`SAMPLE_PAGES` pages, whatever
    its size): equal-width ranges of skewed keys (one sentinel key far above the rest) would
    put nearly every row in one range, and its pairs in memory at once. [] when the sample
    holds too few rows in scope to tell (a small district in a table shared by many)."""
    pages = conn.execute("SELECT pg_relation_size(%s::regclass) / 8192", [target.as_string(conn)]).fetchone()[0]
    percent = min(100.0, 100.0 * SAMPLE_PAGES / max(pages, 1))
    fractions = [i / parts for i in range(1, parts)]
    sampled, cuts = conn.execute(sql.SQL(
        "SELECT count(*), percentile_disc(CAST(%s AS float8[])) WITHIN GROUP (ORDER BY {k})"
        " FROM {t} s TABLESAMPLE SYSTEM (%s) WHERE {w}").format(k=_key(spec, "s"), t=target, w=scope_sql),
        [fractions, percent, *scope_params]).fetchone()
    return [c for c in cuts or () if c is not None] if sampled >= 20 * parts else []


def _district_span(conn: psycopg.Connection, spec: ObjectSpec, source_query: str) -> tuple:
    """(min, max) key of the district's accepted rows: from its index on the key when the
    extract reads the key straight from a table, else one pass without hashing."""
    return conn.execute(sql.SQL("SELECT min({c}), max({c}) FROM ({q}) AS d WHERE d.reject_reason IS NULL").format(
        c=_key(spec, "d"), q=sql.SQL(source_query))).fetchone()


def _state_span(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                scope_params: list) -> tuple:
    """(min, max) key of the state's rows in scope: two probes of its primary key."""
    return conn.execute(sql.SQL("SELECT min({c}), max({c}) FROM {t} s WHERE {w}")
                        .format(c=_key(spec, "s"), t=target, w=scope_sql), scope_params).fetchone()


def differing_keys(source: psycopg.Connection, cur: psycopg.Cursor, spec: ObjectSpec, source_query: str,
                   target: sql.Composable, scope_sql: sql.Composable, scope_params: list,
                   pool: ThreadPoolExecutor, rows: int, limit: int,
                   reading: Callable) -> Diff | None:
    """The `Diff` between the district's accepted rows of `source_query` and the state's rows in scope;
    None once more than `limit` differ (copying everything is then cheaper). `rows` (the larger
    side's count) decides how many key ranges; each range's two queries run side by side
    (the district's on `pool`). `reading` wraps the district's queries (names a broken extract)."""
    if "numpy" not in sys.modules:  # its import (~0.09 s) overlaps the first queries
        threading.Thread(target=importlib.import_module, args=("numpy",), daemon=True).start()
    parts = max(1, -(-rows // PART_ROWS))
    ranges: list[tuple[int, int] | None] = [None]
    if parts > 1:
        at_district = pool.submit(_district_span, source, spec, source_query)
        state = _state_span(cur.connection, spec, target, scope_sql, scope_params)
        cuts = _state_cuts(cur.connection, spec, target, scope_sql, scope_params, parts)
        with reading():
            ranges = key_bounds(at_district.result(), state, parts, cuts)
    keys: list = []
    gone: list[int] = []
    added = 0
    for i, bounds in enumerate(ranges):
        at_district = pool.submit(district_pairs, source, spec, source_query, bounds, i == 0)
        at_state = state_pairs(cur.connection, spec, target, scope_sql, scope_params, bounds)
        with reading():
            pairs, nulls = at_district.result()
        part = compare(pairs, at_state)
        keys.extend(part.keys + [None] * bool(nulls))
        gone.extend(part.gone)
        added += part.added
        if len(keys) > limit:
            return None
    return Diff(keys, gone, added)
