"""Digests: find which part of an object changed before copying any of it.

A weekly resync mostly finds nothing new, yet copying every row into a staging table costs
about as much as the first load. So before copying, the engine asks both sides the same
questions, in parallel:

1. totals: the row count and the XOR of a hash of each row's content, over the whole scope.
   Equal totals mean equal row sets (up to a 64-bit hash collision): nothing to copy. One pass,
   no grouping, so this costs about one read of the object on each side.
2. only when the totals differ, for a key of one integer column (65 of our 66 objects): the
   (key, row hash) of every row, per key range, compared in Python (`keydiff`): exactly the
   keys that differ are copied and merged. Any other key, steps 3 and 4:
3. buckets: the same totals per bucket of a hash of the key (~16 rows).
4. for the buckets that differ, rows: the district's (key hash, row hash) of those buckets
   stream into the state, which compares them per key hash with its own; only the rows under
   key hashes that differ are copied and merged (see `differing`).

"Unchanged" is exact, to one definition used everywhere (digests, merge, verification): two rows
are equal when every column is equal as `IS NOT DISTINCT FROM` on its canonical value, cast to
the type the hierarchy declares, so NULL ≠ '' ≠ 'NaN', 8.5 ≠ 8.50 and every bit of a bigint
counts. The canonical value of a bigint, numeric or timestamp column is its binary wire form
(`int8send`, `numeric_send`, which carries the scale and NaN/±Infinity, `timestamp_send`): plain
`hash_record_extended` folds 64-bit values into 32 bits, ignores a numeric's scale and hashes
NULL, NaN and ±Infinity alike. The other types (int, date, bool, text) hash injectively enough
as they are: a 64-bit mix of the value; NULL contributes 0.

The row hash is `hash_record_extended` (64 bits) over those canonical values. At the state it
is a stored generated column of every object table (`campus_row_hash`, the same expression
over the table's own columns, computed by PostgreSQL whenever a row is written, by whomever),
and the state's digests read it: a weekly resync hashes rows only at the district, and the
state, which serves every district, only reads a column (totals of 1M rows: 0.12 s instead of
0.41 s here). Writes pay for it once (a first load of 1M rows ~0.7 s more). A change goes
unseen only if two different rows of one bucket hash to the same XOR: about 2^-64 per bucket
compared, so ~4e-11 a week for 170 districts × 60 objects × 65,536 buckets; the row step adds
the same 2^-64 per key hash of a differing bucket (count and XOR of row hashes under one key
hash), about as many more comparisons as rows changed: the bound stays ~1e-10 a week; `keydiff`
compares each key's row hash once, 2^-64 per row compared, ~1e-12 a week for 1M changed rows. The
merge and the verification do not rely on the hash: they compare the canonical values
themselves.

At the district only rows the extract accepts (`reject_reason IS NULL`) are hashed; refused
rows are counted per reason from the same query, so their counts never need the copy. A row
whose parent is missing at the state is never at the state, so its bucket always differs and is
always copied and checked again. Rows the district refuses but the state keeps (see
`ObjectSpec.delete_refused`) are left out of the state's digest by key, so they do not make
their bucket differ forever.
"""

from __future__ import annotations

import sys
from array import array

import psycopg
from psycopg import sql

from campus_sync.hierarchy import ObjectSpec
from campus_sync.hierarchy.model import COLUMN_TYPES
from campus_sync.engine.pipe import copy_across
from campus_sync.engine.schema import ROW_HASH, canonical, cast_declared, ident, row_hash_expr  # noqa: F401 - used here and by keydiff

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
        cast_declared(alias, c, t) for c, t in columns))


def rows_differ(spec: ObjectSpec, a: str, b: str) -> sql.Composable:
    """Exact test that row `a` differs from row `b` in a non-key column (the merge and the
    verification use it; no hash involved)."""
    non_key = [(c, t) for c, t in spec.columns if c not in spec.key]
    if not non_key:
        return sql.SQL("FALSE")
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(canonical(a, non_key)), sql.SQL(", ").join(canonical(b, non_key)))


def bucket_expr(spec: ObjectSpec, alias: str, buckets: int) -> sql.Composable:
    """The bucket of a row: its key's hash, masked to `buckets` (a power of two)."""
    return sql.SQL("({} & {})::integer").format(key_hash_expr(spec, alias), sql.Literal(buckets - 1))


def stored_hash(alias: str) -> sql.Composable:
    """A state row's hash, stored with it (`schema.ROW_HASH`: generated from the same
    `row_hash_expr` whenever the row is written)."""
    return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(ROW_HASH))


class Digest:
    """Per bucket: count and XOR of row hashes of accepted rows; plus the rows and refusals
    counted (the district's, from its totals).

    Two fixed arrays of `buckets` 64-bit slots: under 1 MiB per side however many rows the
    object has (a dict of tuples per bucket took 15 MB per side at 65,536 buckets)."""

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets
        self.counts = array("q", bytes(8 * buckets))
        self.xors = array("q", bytes(8 * buckets))
        self.rows = 0  # every row in scope, refused ones included
        self.reasons: dict[str, int] = {}

    def changed(self, other: Digest) -> list[int]:
        """Buckets whose accepted rows differ between the two digests, sorted."""
        return [b for b in range(self.buckets)
                if self.counts[b] != other.counts[b] or self.xors[b] != other.xors[b]]


def kept_expr(spec: ObjectSpec, alias: str) -> sql.Composable:
    """True for a refused row whose copy at the state is kept (its reason is not one of the
    object's `delete_refused`); NULL keys can never be at the state."""
    reason = sql.SQL("{}.reject_reason").format(sql.Identifier(alias))
    parts = [sql.SQL("{} IS NOT NULL AND {} <> 'null_key'").format(reason, reason)]
    # Reasons are [a-z0-9_:*] (checked by the loader): only * needs translating.
    regexes = ["^" + p.replace("*", ".*") + "$" for p in spec.delete_refused]
    if regexes:
        parts.append(sql.SQL("NOT ({} ~ ANY ({}::text[]))").format(reason, sql.Literal(regexes)))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def district_totals(conn: psycopg.Connection, spec: ObjectSpec, source_query: str
                    ) -> tuple[int, int, int, int, dict[str, int]]:
    """(rows, accepted rows, XOR of accepted row hashes, refused rows the state keeps, refused
    rows per reason) of the whole extract: one pass grouped only by reason (a handful of
    groups), so an unchanged object costs one read and one round trip."""
    query = sql.SQL(
        "SELECT d.reject_reason, count(*), coalesce(bit_xor({hash}) FILTER (WHERE d.reject_reason IS NULL), 0),"
        " count(*) FILTER (WHERE {kept}) FROM ({source}) AS d GROUP BY 1"
    ).format(hash=row_hash_expr(spec, "d"), kept=kept_expr(spec, "d"), source=sql.SQL(source_query))
    rows = accepted = xor = kept = 0
    reasons: dict[str, int] = {}
    for reason, count, group_xor, group_kept in conn.execute(query):
        rows += count
        kept += group_kept
        if reason is None:
            accepted, xor = count, group_xor
        else:
            reasons[reason] = count
    return rows, accepted, xor, kept, dict(sorted(reasons.items()))


def state_totals(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                 scope_params: list) -> tuple[int, int]:
    """(rows, XOR of row hashes) of the state rows in scope (alias `s` in `scope_sql`)."""
    query = sql.SQL("SELECT count(*), coalesce(bit_xor({hash}), 0) FROM {target} s WHERE {scope}").format(
        hash=stored_hash("s"), target=target, scope=scope_sql)
    return conn.execute(query, scope_params).fetchone()


def district_reasons(conn: psycopg.Connection, source_query: str) -> dict[str, int]:
    """Refused rows of the extract, counted per reason."""
    query = sql.SQL("SELECT d.reject_reason, count(*) FROM ({}) AS d WHERE d.reject_reason IS NOT NULL"
                    " GROUP BY 1 ORDER BY 1").format(sql.SQL(source_query))
    return dict(conn.execute(query).fetchall())


# The digests group a subquery fenced with OFFSET 0: the planner cannot trace the bucket back to
# the key column, so it sizes the hash table for a few buckets and grows it, instead of for one
# group per key (a 32 MB table for 1M rows, every lookup a cache miss: 0.46 s instead of 0.27 s).


def _dense(conn: psycopg.Connection, grouped: sql.Composable, buckets: int, params: list | None = None) -> Digest:
    """A Digest from `grouped` (rows of bucket, count, XOR), fetched as two packed 8-byte
    arrays over every bucket (one row, under 1 MiB) instead of 65,536 rows parsed one by one in
    Python (district digest of 1M rows: 1.32 s instead of 1.56 s here)."""
    query = sql.SQL(
        "SELECT string_agg(int8send(coalesce(x.c, 0)), ''::bytea ORDER BY g.b),"
        " string_agg(int8send(coalesce(x.x, 0)), ''::bytea ORDER BY g.b)"
        " FROM generate_series(0, {last}) AS g(b) LEFT JOIN ({grouped}) AS x(b, c, x) ON x.b = g.b"
    ).format(last=sql.Literal(buckets - 1), grouped=grouped)
    counts, xors = conn.execute(query, params, binary=True).fetchone()
    out = Digest(buckets)
    for values, packed in ((out.counts, counts), (out.xors, xors)):
        values[:] = array("q", packed)
        if sys.byteorder == "little":  # int8send is big-endian
            values.byteswap()
    out.rows = sum(out.counts)
    return out


def district_digest(conn: psycopg.Connection, spec: ObjectSpec, source_query: str, buckets: int) -> Digest:
    """Digest of the district's accepted rows of `source_query` (the bound query the copy would
    run). Its refusals are counted by `district_totals`, in the same snapshot."""
    grouped = sql.SQL(
        "SELECT b, count(*), bit_xor(h) FROM (SELECT {bucket} AS b, {hash} AS h FROM ({source}) AS d"
        " WHERE d.reject_reason IS NULL OFFSET 0) AS x GROUP BY 1"
    ).format(bucket=bucket_expr(spec, "d", buckets), hash=row_hash_expr(spec, "d"), source=sql.SQL(source_query))
    return _dense(conn, grouped, buckets)


def state_digest(conn: psycopg.Connection, spec: ObjectSpec, target: sql.Composable, scope_sql: sql.Composable,
                 scope_params: list, buckets: int) -> Digest:
    """Digest of the state rows in scope (alias `s` in `scope_sql`)."""
    grouped = sql.SQL("SELECT b, count(*), bit_xor(h) FROM (SELECT {bucket} AS b, {hash} AS h FROM {target} s"
                      " WHERE {scope} OFFSET 0) AS x GROUP BY 1").format(
        bucket=bucket_expr(spec, "s", buckets), hash=stored_hash("s"), target=target, scope=scope_sql)
    return _dense(conn, grouped, buckets, scope_params)


# ------------------------------------------------------------------ second level: rows
# A bucket holds ~16 rows, so copying whole buckets carries ~15 unchanged rows per change. For
# the buckets that differ, the district's (key hash, row hash) of each accepted row stream into
# a temp table at the state (binary COPY, passed through unparsed), and the state compares them
# with its own rows of those buckets in one query: only the key hashes whose rows differ come
# back, with where the state's rows under them are (the key when it is one integer column, else
# the ctid), so a row the district no longer has is found again without another pass. Nothing
# per row is held in Python: memory stays flat however many rows the buckets hold.

LISTED = sql.Identifier("campus_listed")
ROWS_MAX = 400_000  # rows of the differing buckets listed per side at most: beyond, copy whole buckets


def integer_key(spec: ObjectSpec) -> str | None:
    """The key column when the key is one int or bigint column (most objects): rows are then
    found again through the primary key rather than by ctid."""
    if len(spec.key) == 1 and dict(spec.columns)[spec.key[0]] in ("int", "bigint"):
        return spec.key[0]
    return None


# A one-column key's hash, without the record machinery: for one column, hash_record_extended
# is exactly that column type's extended hash (0 for NULL), so these give the same values (and
# buckets) at ~60 % of the cost (a digest of 1M rows: 0.56 s instead of 0.90 s here).
_KEY_HASH = {"int": "hashint4extended", "bigint": "hashint8extended", "text": "hashtextextended"}


def key_hash_expr(spec: ObjectSpec, alias: str) -> sql.Composable:
    """64-bit hash of a row's key (the bucket is its low bits): `hash_record_extended` of the key
    columns, computed directly for a one-column int, bigint or text key."""
    types = dict(spec.columns)
    if len(spec.key) == 1 and types[spec.key[0]] in _KEY_HASH:
        column = spec.key[0]
        return sql.SQL("coalesce({}({}, 0), 0)").format(
            sql.SQL(_KEY_HASH[types[column]]), cast_declared(alias, column, types[column]))
    return sql.SQL("hash_record_extended({}, 0)").format(_row(alias, [(k, types[k]) for k in spec.key]))


def key_id_expr(spec: ObjectSpec, alias: str) -> sql.Composable:
    """What the row step lists a row under: the key itself when it is one integer column (the
    copy then asks the district for those keys, which its index finds, instead of hashing every
    row's key again), else the key's 64-bit hash."""
    column = integer_key(spec)
    if column:
        return sql.SQL("CAST({}.{} AS bigint)").format(sql.Identifier(alias), ident(column))
    return key_hash_expr(spec, alias)


def differing(source: psycopg.Connection, cur: psycopg.Cursor, spec: ObjectSpec, source_query: str,
              target: sql.Composable, scope_sql: sql.Composable, scope_params: list, buckets: int,
              wanted: list[int]) -> tuple[list[int], list]:
    """The key ids (`key_id_expr`: integer keys, else key hashes) whose rows differ between the
    district's `source_query` (the bound extract, limited to the `wanted` buckets) and the
    state's rows in scope of those buckets (a row added, gone or changed: count or XOR of row
    hashes under the key id differ), and where the state's rows that may be gone are: integer
    keys the district no longer lists, or (other keys) the ctids of every state row under a key
    hash that differs. A NULL integer key (refused later as `null_key`) is listed as None."""
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (k bigint, h bigint) ON COMMIT DROP").format(LISTED))
    listing = sql.SQL(
        "COPY (SELECT {key}, {hash} FROM ({source}) AS d WHERE d.reject_reason IS NULL) TO STDOUT (FORMAT BINARY)"
    ).format(key=key_id_expr(spec, "d"), hash=row_hash_expr(spec, "d"), source=sql.SQL(source_query))
    copy_across(source, listing, cur, sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(LISTED))
    column = integer_key(spec)
    where = sql.SQL("CAST(s.{} AS bigint)").format(ident(column)) if column else sql.SQL("s.ctid::text")
    query = sql.SQL(
        "SELECT coalesce(d.k, s.k), {gone} FROM (SELECT k, count(*) AS c, bit_xor(h) AS x FROM {listed} GROUP BY k) d"
        " FULL JOIN (SELECT {key} AS k, count(*) AS c, bit_xor({hash}) AS x, array_agg({where}) AS w"
        " FROM {target} s WHERE {scope} AND {within} GROUP BY 1) s ON d.k = s.k"
        " WHERE d.c IS DISTINCT FROM s.c OR d.x IS DISTINCT FROM s.x"
    ).format(listed=LISTED, key=key_id_expr(spec, "s"), hash=stored_hash("s"), where=where,
             # An integer key the district lists is a row it still has: only the state's rows
             # under keys it does not list can be gone. A key hash may stand for two keys.
             gone=sql.SQL("CASE WHEN d.k IS NULL THEN s.w END" if column else "s.w"),
             target=target, scope=scope_sql,
             within=sql.SQL("{} = ANY(CAST(%s AS integer[]))").format(bucket_expr(spec, "s", buckets)))
    keys: list[int] = []
    wheres: list = []
    for key, found in _fetch(cur.connection, query, ["bigint", "bigint[]" if column else "text[]"],
                             [*scope_params, wanted]):
        keys.append(key)
        wheres.extend(found or ())
    return keys, wheres


def _fetch(conn: psycopg.Connection, query: sql.Composable, types: list[str], params: list | None = None):
    """Rows of a digest query, streamed with binary `COPY (query) TO STDOUT`: constant memory,
    and unlike a server-side cursor (planned for its first rows, never in parallel) it runs
    with the same plan as a plain query: 4x faster for 65,536 buckets of 1M rows."""
    if params is not None:  # COPY takes no parameters: bind them client-side
        query = sql.SQL(psycopg.ClientCursor(conn).mogrify(query, params))
    with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)) as copy:
        copy.set_types(types)
        yield from copy.rows()
