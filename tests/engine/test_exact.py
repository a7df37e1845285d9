"""Change detection is exact: a property test over every column type the hierarchy allows.

One synthetic object with a column of each declared type, on real PostgreSQL: for random pairs
of rows, a resync carries the change when the rows differ (as `IS NOT DISTINCT FROM` on the
canonical value: NULL ≠ '' ≠ 'NaN', 8.5 ≠ 8.50, all 64 bits of a bigint) and writes nothing when
they are equal. Filler rows make the digests go through buckets, as a real resync does.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campus_sync.engine import sync as engine
from pg_helpers import one_object_deployment

pytestmark = pytest.mark.db

YEAR = 2027
COLUMNS = ["i", "b", "t", "d", "f", "n", "ts"]
PROBE_YAML = """objects:
  - name: Probe
    description: one column of every declared type
    parents: []
    key: [id]
    columns: {id: int, i: int, b: bigint, t: text, d: date, f: bool, n: numeric, ts: timestamp}
"""
PROBE_SQL = "SELECT id, i, b, t, d, f, n, ts, NULL::text AS reject_reason FROM campus.probe\n"


@pytest.fixture(scope="module")
def probe(tmp_path_factory, server_dsn):
    """A compiled one-object hierarchy, a district with 40 filler rows and a state."""
    out = one_object_deployment(server_dsn, tmp_path_factory.mktemp("probe"), "probe", PROBE_YAML, PROBE_SQL)
    with psycopg.connect(out["district"]) as conn:
        conn.execute("INSERT INTO campus.probe SELECT g, g, g * 4294967296, 'row ' || g, DATE '2026-09-01' + g,"
                     " g % 2 = 0, g / 8.0, TIMESTAMP '2026-09-01 08:00' + g * INTERVAL '1 second'"
                     " FROM generate_series(2, 41) g")
        conn.execute("INSERT INTO campus.probe (id) VALUES (1)")
    sync(out)
    return out


def sync(p, **kw):
    return engine.sync_object(p["graph"], "Probe", district_id="0101", source_dsn=p["district"],
                              state_dsn=p["state"], scope=engine.Scope(YEAR), **kw)


def canonical(row: dict) -> tuple:
    """What the state must hold: Decimal keeps its scale and NaN as text, as PostgreSQL does."""
    return tuple(str(row[c]) if c == "n" and row[c] is not None else row[c] for c in COLUMNS)


def state_row(p) -> tuple:
    with psycopg.connect(p["state"]) as conn:
        r = conn.execute("SELECT i, b, t, d, f, n::text, ts FROM state.probe WHERE district_id = '0101' AND id = 1"
                         ).fetchone()
    return tuple(r)


def _numeric():
    finite = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=None,
                         allow_nan=False, allow_infinity=False).filter(lambda d: d.as_tuple().exponent >= -6)
    special = st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"),
                               Decimal("8.5"), Decimal("8.50"), Decimal("0"), Decimal("0.0")])
    return st.one_of(finite, special)


def _opt(s):
    return st.one_of(st.none(), s)


ROWS = st.fixed_dictionaries({
    "i": _opt(st.sampled_from([0, 1, -1, 5, 2**31 - 1, -2**31]) | st.integers(-2**31, 2**31 - 1)),
    "b": _opt(st.sampled_from([5, 4294967300, 2**63 - 1, -2**63, 0, -1, 4294967296])
              | st.integers(-2**63, 2**63 - 1)),
    "t": _opt(st.sampled_from(["", "NaN", "null", " ", "a,b", '"', "\\", "(1,2)"])
              | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)),
    "d": _opt(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))),
    "f": _opt(st.booleans()),
    "n": _opt(_numeric()),
    "ts": _opt(st.sampled_from([dt.datetime(2026, 9, 1, 8, 0), dt.datetime(2026, 9, 1, 8, 0, 0, 1)])
               | st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1))),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=ROWS, b=ROWS)
def test_resync_carries_every_change_and_writes_nothing_for_equal_rows(probe, a, b):
    for row in (a, b, a):  # a → b → a: both directions of every pair
        with psycopg.connect(probe["district"]) as conn:
            conn.execute("UPDATE campus.probe SET i = %(i)s, b = %(b)s, t = %(t)s, d = %(d)s, f = %(f)s,"
                         " n = %(n)s, ts = %(ts)s WHERE id = 1", row)
        before = state_row(probe)
        r = sync(probe)
        expected = canonical(row)
        assert state_row(probe) == expected
        changed = before != expected
        assert (r.updated, r.inserted, r.deleted) == (int(changed), 0, 0), (before, expected)
        if not changed:
            assert r.copied == 0  # equal totals: nothing crossed the wire


@pytest.mark.parametrize(("old", "new"), [
    ({"n": None}, {"n": Decimal("NaN")}),
    ({"n": Decimal("8.5")}, {"n": Decimal("8.50")}),
    ({"n": Decimal("Infinity")}, {"n": Decimal("-Infinity")}),
    ({"b": 5}, {"b": 4294967300}),
    ({"t": None}, {"t": ""}),
    ({"ts": dt.datetime(2026, 9, 1, 8, 0)}, {"ts": dt.datetime(2026, 9, 1, 8, 0) + dt.timedelta(seconds=4294.967296)}),
])
def test_the_changes_a_plain_record_hash_misses_are_carried(probe, old, new):
    """The reproductions from the issue: each pair hashed alike under hash_record_extended."""
    base = {c: None for c in COLUMNS}
    for row, expect_update in ((dict(base, **old), None), (dict(base, **new), 1)):
        with psycopg.connect(probe["district"]) as conn:
            conn.execute("UPDATE campus.probe SET i = %(i)s, b = %(b)s, t = %(t)s, d = %(d)s, f = %(f)s,"
                         " n = %(n)s, ts = %(ts)s WHERE id = 1", row)
        r = sync(probe)
        if expect_update:
            assert r.updated == 1 and r.copied > 0
        assert state_row(probe) == canonical(row)
