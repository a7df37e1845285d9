"""The exact key diff of integer-keyed objects: `keydiff.compare` against a plain-Python model,
and the engine over many key ranges (range edges, bigint extremes, NULL and duplicate keys)."""

from __future__ import annotations

import struct

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_sync.engine import sync as engine
from campus_sync.engine import keydiff
from pg_helpers import one_object_deployment


def _pack(pairs: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack(">qq", k, h) for k, h in pairs)


def _model(district: list[tuple[int, int]], state: dict[int, int]) -> keydiff.Diff:
    """What differs, said the slow way: a key differs unless the district has it exactly once
    with the state's hash."""
    seen: dict[int, list[int]] = {}
    for k, h in district:
        seen.setdefault(k, []).append(h)
    differ = {k for k, hs in seen.items() if len(hs) != 1 or state.get(k) != hs[0]}
    gone = sorted(k for k in state if k not in seen)
    added = sum(1 for k, hs in seen.items() if len(hs) == 1 and k not in state)
    return keydiff.Diff(sorted(differ | set(gone)), gone, added)


KEYS = st.sampled_from([-2**63, -1, 0, 1, 2, 3, 2**31, 2**63 - 1]) | st.integers(-2**63, 2**63 - 1)
HASHES = st.sampled_from([0, 1, -1]) | st.integers(-2**63, 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(district=st.lists(st.tuples(KEYS, HASHES), max_size=40), state=st.dictionaries(KEYS, HASHES, max_size=40),
       overlap=st.lists(st.booleans(), max_size=40), in_order=st.booleans())
def test_compare_matches_the_model(district, state, overlap, in_order):
    # many keys on both sides, some with the same hash (unchanged), some not
    for (k, h), same in zip(list(state.items()), overlap):
        district.append((k, h if same else h ^ 1))
    if in_order:
        district.sort()
    state_pairs = sorted(state.items()) if in_order else list(state.items())
    assert keydiff.compare(_pack(district), _pack(state_pairs)) == _model(district, state)


def test_compare_of_nothing():
    assert keydiff.compare(b"", b"") == ([], [], 0)
    assert keydiff.compare(_pack([(5, 1)]), b"") == ([5], [], 1)
    assert keydiff.compare(b"", _pack([(5, 1)])) == ([5], [5], 0)
    assert keydiff.compare(_pack([(5, 1), (5, 1)]), b"") == ([5], [], 0)  # refused, not inserted


SPAN = st.one_of(st.just((None, None)), st.tuples(KEYS, KEYS).map(sorted).map(tuple))


@given(district=SPAN, state=SPAN, parts=st.integers(1, 50), cuts=st.none() | st.lists(KEYS, max_size=12))
def test_key_ranges_cover_both_sides_contiguously_within_bigint(district, state, parts, cuts):
    ranges = keydiff.key_bounds(district, state, parts, cuts)
    assert 1 <= len(ranges) <= (len(cuts) + 1 if cuts else parts)
    spans = [s for s in (district, state) if s[0] is not None]
    if not spans:
        return
    assert ranges[0][0] == min(s[0] for s in spans) and ranges[-1][1] == max(s[1] for s in spans)
    assert all(lo <= hi for lo, hi in ranges)
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:]))
    assert -2**63 <= ranges[0][0] and ranges[-1][1] <= 2**63 - 1


YAML = """objects:
  - name: Wide
    description: a bigint key over its whole range
    parents: []
    key: [id]
    columns: {id: bigint, label: text}
"""
SQL = "SELECT id, label, NULL::text AS reject_reason FROM campus.wide\n"


@pytest.fixture
def wide(tmp_path, server_dsn, monkeypatch):
    monkeypatch.setattr(keydiff, "PART_ROWS", 40)  # 1,000 rows: ~25 key ranges per resync
    p = one_object_deployment(server_dsn, tmp_path, "wide", YAML, SQL)
    with psycopg.connect(p["district"]) as conn:
        conn.execute("ALTER TABLE campus.wide DROP CONSTRAINT wide_pkey")
        conn.execute("ALTER TABLE campus.wide ALTER COLUMN id DROP NOT NULL")
        conn.execute("INSERT INTO campus.wide SELECT g * 1000003, 'row ' || g FROM generate_series(-500, 497) g")
        conn.execute("INSERT INTO campus.wide VALUES (-9223372036854775808, 'lowest'), (9223372036854775807, 'highest')")
    return p


def sync(p):
    return engine.sync_object(p["graph"], "Wide", district_id="0101", source_dsn=p["district"],
                              state_dsn=p["state"], scope=engine.Scope(2027))


def state_rows(p) -> list[tuple]:
    with psycopg.connect(p["state"]) as conn:
        return conn.execute("SELECT id, label FROM state.wide ORDER BY id").fetchall()


def district_rows(p) -> list[tuple]:
    with psycopg.connect(p["district"]) as conn:
        return conn.execute("SELECT id, label FROM campus.wide WHERE id IS NOT NULL ORDER BY id").fetchall()


@pytest.mark.db
def test_many_key_ranges_carry_exactly_the_changes(wide):
    assert sync(wide).inserted == 1000
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("UPDATE campus.wide SET label = label || '!' WHERE id IN (-9223372036854775808, 0, 497 * 1000003)")
        conn.execute("DELETE FROM campus.wide WHERE id IN (9223372036854775807, -500 * 1000003)")
        conn.execute("INSERT INTO campus.wide VALUES (7, 'between'), (9223372036854775806, 'near the top')")
    r = sync(wide)
    assert (r.updated, r.deleted, r.inserted, r.copied) == (3, 2, 2, 5)
    assert state_rows(wide) == district_rows(wide)
    assert sync(wide).copied == 0


@pytest.mark.db
def test_null_and_duplicate_keys_over_many_ranges(wide):
    """A NULL key is in no range and is counted once; a duplicated key is staged (and refused)
    on every resync, while the state keeps its row and the real changes are carried."""
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("INSERT INTO campus.wide VALUES (NULL, 'no key'), (3000009, 'twice')")
    first = sync(wide)
    assert first.error_reasons == {"duplicate_key": 2, "null_key": 1}
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("UPDATE campus.wide SET label = 'changed' WHERE id = 10 * 1000003")
    r = sync(wide)
    assert (r.updated, r.inserted, r.deleted, r.error_reasons) == (1, 0, 0, {"duplicate_key": 2, "null_key": 1})
    assert r.copied == 1 + 2 + 1  # the changed row, the duplicated key's two rows, the NULL key
    assert sync(wide).updated == 0


@pytest.mark.db
def test_state_rows_outside_the_district_key_range_are_deleted(wide):
    """The ranges span both sides' keys: a state row below the district's lowest key or above
    its highest is still found gone."""
    sync(wide)
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("DELETE FROM campus.wide WHERE id IN (-9223372036854775808, 9223372036854775807)")
    r = sync(wide)
    assert (r.deleted, r.updated, r.inserted) == (2, 0, 0)
    assert state_rows(wide) == district_rows(wide)


@pytest.mark.db
@pytest.mark.parametrize("returned", ["text", "numeric", "bigint"])
def test_an_extract_returning_the_key_as_another_type_diffs_as_the_declared_int(tmp_path, server_dsn,
                                                                                monkeypatch, returned):
    """The extract may return the key as text, numeric or bigint for a declared int (the engine
    casts to the declared type everywhere): the key ranges and spans must cast it too."""
    monkeypatch.setattr(keydiff, "PART_ROWS", 40)
    yaml = YAML.replace("Wide", "Loose").replace("id: bigint", "id: int")
    p = one_object_deployment(server_dsn, tmp_path, "loose", yaml,
                              f"SELECT id::{returned} AS id, label, NULL::text AS reject_reason FROM campus.loose\n")
    with psycopg.connect(p["district"]) as conn:
        conn.execute("INSERT INTO campus.loose SELECT g, 'row ' || g FROM generate_series(1, 300) g")
    run = lambda: engine.sync_object(p["graph"], "Loose", district_id="0101", source_dsn=p["district"],  # noqa: E731
                                     state_dsn=p["state"], scope=engine.Scope(2027))
    assert run().inserted == 300
    with psycopg.connect(p["district"]) as conn:
        conn.execute("UPDATE campus.loose SET label = 'changed' WHERE id IN (3, 299)")
        conn.execute("DELETE FROM campus.loose WHERE id = 150")
    r = run()
    assert (r.updated, r.deleted, r.inserted, r.copied) == (2, 1, 0, 2)


@pytest.mark.db
def test_a_sentinel_key_does_not_put_every_row_in_one_range(wide, monkeypatch):
    """Equal-width ranges over keys 1..999 and one sentinel near bigint's top would hold every
    row in the first range; the state's sampled quantiles keep each range near PART_ROWS."""
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("DELETE FROM campus.wide")
        conn.execute("INSERT INTO campus.wide SELECT g, 'row ' || g FROM generate_series(1, 999) g")
        conn.execute("INSERT INTO campus.wide VALUES (4611686018427387904, 'sentinel')")
    sync(wide)
    sizes: list[int] = []
    real = keydiff.district_pairs

    def counted(*args):
        pairs, nulls = real(*args)
        sizes.append(len(pairs) // 16)
        return pairs, nulls

    monkeypatch.setattr(keydiff, "district_pairs", counted)
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("UPDATE campus.wide SET label = 'changed' WHERE id IN (1, 500, 4611686018427387904)")
    assert sync(wide).updated == 3
    assert sum(sizes) == 1000 and len(sizes) >= 20 and max(sizes) <= 3 * keydiff.PART_ROWS


@pytest.mark.db
def test_more_keys_differing_than_the_cap_copy_everything(wide, monkeypatch):
    """Past `digest.ROWS_MAX` differing keys the key list is not sent back to the district:
    the resync copies the whole extract, with the same counts."""
    sync(wide)
    monkeypatch.setattr(engine.digest, "ROWS_MAX", 5)
    with psycopg.connect(wide["district"]) as conn:
        conn.execute("UPDATE campus.wide SET label = label || '!' WHERE id BETWEEN 0 AND 10 * 1000003")
    r = sync(wide)
    assert (r.updated, r.copied) == (11, 1000)
    assert state_rows(wide) == district_rows(wide)
