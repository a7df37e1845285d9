"""A resync after a few changes copies just the changed rows, and finds rows gone at the district
again through the primary key (integer keys) or by ctid (any other key): both paths, exactly."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.engine import sync as engine
from pg_helpers import one_object_deployment

pytestmark = pytest.mark.db

YAML = """objects:
  - name: Tagged
    description: a text key (rows found again by ctid) or an integer key (by the primary key)
    parents: []
    key: [code]
    columns: {code: %s, n: int, label: text}
"""
SQL = "SELECT code, n, label, NULL::text AS reject_reason FROM campus.tagged\n"


@pytest.fixture(params=["text", "int"])
def tagged(request, tmp_path, server_dsn):
    p = one_object_deployment(server_dsn, tmp_path, "tagged", YAML % request.param, SQL)
    with psycopg.connect(p["district"]) as conn:
        code = "'c' || g" if request.param == "text" else "g"
        conn.execute(f"INSERT INTO campus.tagged SELECT {code}, g, 'row ' || g FROM generate_series(1, 3000) g")
    return dict(p, new="'new'" if request.param == "text" else "100000")


def sync(p):
    return engine.sync_object(p["graph"], "Tagged", district_id="0101", source_dsn=p["district"],
                              state_dsn=p["state"], scope=engine.Scope(2027))


def test_resync_deletes_updates_and_inserts_only_the_changed_rows(tagged):
    assert sync(tagged).inserted == 3000
    with psycopg.connect(tagged["district"]) as conn:
        conn.execute("DELETE FROM campus.tagged WHERE n IN (7, 700)")
        conn.execute("UPDATE campus.tagged SET label = NULL WHERE n IN (8, 800, 2999)")
        conn.execute(f"INSERT INTO campus.tagged VALUES ({tagged['new']}, 1, 'x')")
    r = sync(tagged)
    assert (r.deleted, r.updated, r.inserted) == (2, 3, 1)
    assert r.copied == 4  # the 3 changed rows and the new one; the deleted rows are not at the district
    with psycopg.connect(tagged["state"]) as conn:
        held = conn.execute("SELECT count(*), count(*) FILTER (WHERE label IS NULL) FROM state.tagged").fetchone()
    assert held == (2999, 3)
    again = sync(tagged)
    assert (again.copied, again.inserted, again.updated, again.deleted) == (0, 0, 0, 0)


def test_a_null_key_is_refused_on_the_row_level_path_too(tagged):
    """The row step lists an integer key by its value: a NULL key is listed as None, and must
    still be copied and refused as `null_key` on every resync, with the real changes carried."""
    with psycopg.connect(tagged["district"]) as conn:
        conn.execute("ALTER TABLE campus.tagged DROP CONSTRAINT tagged_pkey")
        conn.execute("ALTER TABLE campus.tagged ALTER COLUMN code DROP NOT NULL")
        conn.execute("INSERT INTO campus.tagged VALUES (NULL, 0, 'no key')")
    first = sync(tagged)
    assert (first.inserted, first.error_reasons) == (3000, {"null_key": 1})
    for label in ("changed", "changed again"):
        with psycopg.connect(tagged["district"]) as conn:
            conn.execute("UPDATE campus.tagged SET label = %s WHERE n IN (5, 1500)", (label,))
        r = sync(tagged)
        assert (r.updated, r.inserted, r.deleted, r.error_reasons) == (2, 0, 0, {"null_key": 1})
        assert r.copied <= 2 * 3 + 1  # the changed rows and the NULL-keyed one, not whole buckets
