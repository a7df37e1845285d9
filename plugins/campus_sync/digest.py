"""Digests: find which part of an object changed before copying any of it.

A weekly resync mostly finds nothing new, yet copying every row into a staging table costs
about as much as the first load. So before copying, the engine asks both sides the same
questions, in parallel:

1. totals: the row count and the XOR of a hash of each row's content, over the whole scope.
   Equal totals mean equal row sets (up to a 64-bit hash collision): nothing to copy. One pass,
   no grouping, so this costs about one read of the object on each side.
2. only when the totals differ, buckets: the same per bucket of a hash of the key. Only the
   buckets that differ are copied and merged.

Both sides hash the values cast to the types the hierarchy declares, with PostgreSQL's
`hash_record_extended` (the stable hash behind hash partitioning), so an extract that returns
`varchar` or `bigint` for a `text` or `integer` column hashes as the state's stored value does.
At the district only rows the extract accepts (`reject_reason IS NULL`) are hashed; refused
rows are counted per reason from the same query, so their counts never need the copy. A row
whose parent is missing at the state is never at the state, so its bucket always differs and is
always copied and checked again.
"""

from __future__ import annotations

from array import array
from collections import Counter

import psycopg
from psycopg import sql

from campus_sync.hierarchy import ObjectSpec
from campus_sync.hierarchy.model import COLUMN_TYPES
from campus_sync.schema import ident

MAX_BUCKETS = 1 << 16
ROWS_PER_BUCKET = 16  # a 1 % change then touches ~15 % of buckets, not all of them


def bucket_count(rows: int) -> int:
    """A power of two near rows / ROWS_PER_BUCKET, between 1 and MAX_BUCKETS."""
    n = 1
    while n < MAX_BUCKETS and n * ROWS_PER_BUCKET < rows:
        n *= 2
    return n


def _row(alias: str, columns: list[tuple[str, str]]) -> sql.Composable:
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(
        sql.SQL("CAST({}.{} AS {})").format(sql.Identifier(alias), ident(c), sql.SQL(COLUMN_TYPES[t]))
        for c, t in columns))


def bucket_expr(spec: ObjectSpec, alias: str, buckets: int) -> sql.Composable:
    """The bucket of a row: its key's hash, masked to `buckets` (a power of two)."""
    types = dict(spec.columns)
    row = _row(alias, [(k, types[k]) for k in spec.key])
    return sql.SQL("(hash_record_extended({}, 0) & {})::integer").format(row, sql.Literal(buckets - 1))


def row_hash_expr(spec: ObjectSpec, alias: str) -> sql.Composable:
    return sql.SQL("hash_record_extended({}, 0)").format(_row(alias, list(spec.columns)))


class Digest:
    """Per bucket: count and XOR of row hashes of accepted rows; plus the refusals counted.

    Two fixed arrays of `buckets` 64-bit slots, filled from a server-side cursor: memory stays
    under 1 MiB per side however many rows the object has."""

    def __init__(self, buckets: int) -> None:
        self.counts = array("q", bytes(8 * buckets))
        self.xors = array("q", bytes(8 * buckets))
        self.rows = 0  # every row in scope, refused ones included
        self.reasons: dict[str, int] = {}

    def changed(self, other: Digest) -> list[int]:
        """Buckets whose accepted rows differ between the two digests, sorted."""
        return [b for b in range(len(self.counts))
                if self.counts[b] != other.counts[b] or self.xors[b] != other.xors[b]]


def district_totals(conn: psycopg.Connection, spec: ObjectSpec, source_query: str) -> tuple[int, int, int]:
    """(rows, accepted rows, XOR of accepted row hashes) of the whole extract: one pass, no
    grouping, so an unchanged object is recognised at the cost of reading it once."""
    query = sql.SQL(
        "SELECT count(*), count(*) FILTER (WHERE d.reject_reason IS NULL),"
        " coalesce(bit_xor({hash}) FILTER (WHERE d.reject_reason IS NULL), 0) FROM ({source}) AS d"
    ).format(hash=row_hash_expr(spec, "d"), source=sql.SQL(source_query))
    return conn.execute(query).fetchone()


def district_reasons(conn: psycopg.Connection, source_query: str) -> dict[str, int]:
    """Refused rows of the extract, counted per reason."""
    query = sql.SQL("SELECT d.reject_reason, count(*) FROM ({}) AS d WHERE d.reject_reason IS NOT NULL"
                    " GROUP BY 1 ORDER BY 1").format(sql.SQL(source_query))
    return dict(conn.execute(query).fetchall())


def state_totals(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                 scope_params: list) -> tuple[int, int]:
    """(rows, XOR of row hashes) of the state rows in scope (alias `s` in `scope_sql`)."""
    query = sql.SQL("SELECT count(*), coalesce(bit_xor({hash}), 0) FROM {target} s WHERE {scope}").format(
        hash=row_hash_expr(spec, "s"), target=target, scope=scope_sql)
    return conn.execute(query, scope_params).fetchone()


def _fetch(conn: psycopg.Connection, query: sql.Composable, params: list | None = None):
    """Rows of a digest query through a server-side cursor, a few thousand at a time."""
    with conn.cursor(name="campus_digest") as cur:
        cur.itersize = 8192
        cur.execute(query, params)
        yield from cur


def district_digest(conn: psycopg.Connection, spec: ObjectSpec, source_query: str, buckets: int) -> Digest:
    """Digest of the district's extract (`source_query`: the bound query the copy would run)."""
    query = sql.SQL(
        "SELECT {bucket}, d.reject_reason, count(*), bit_xor({hash}) FROM ({source}) AS d GROUP BY 1, 2"
    ).format(bucket=bucket_expr(spec, "d", buckets), hash=row_hash_expr(spec, "d"), source=sql.SQL(source_query))
    out, reasons = Digest(buckets), Counter()
    for bucket, reason, count, xor in _fetch(conn, query):
        out.rows += count
        if reason is None:
            out.counts[bucket], out.xors[bucket] = count, xor
        else:
            reasons[reason] += count
    out.reasons = dict(sorted(reasons.items()))
    return out


def state_digest(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                 scope_params: list, buckets: int) -> Digest:
    """Digest of the state rows in scope (alias `s` in `scope_sql`)."""
    query = sql.SQL("SELECT {bucket}, count(*), bit_xor({hash}) FROM {target} s WHERE {scope} GROUP BY 1").format(
        bucket=bucket_expr(spec, "s", buckets), hash=row_hash_expr(spec, "s"), target=target, scope=scope_sql)
    out = Digest(buckets)
    for bucket, count, xor in _fetch(conn, query, scope_params):
        out.rows += count
        out.counts[bucket], out.xors[bucket] = count, xor
    return out
