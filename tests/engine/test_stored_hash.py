"""The state's row hash is a stored generated column: never stale, whoever writes the row, and
added to a state created before it existed."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync.engine import sync as engine
from campus_sync.engine import schema
from pg_helpers import one_object_deployment

pytestmark = pytest.mark.db

YAML = """objects:
  - name: Fee
    description: every declared type, so the generated hash covers each canonical form
    parents: []
    key: [feeID]
    columns: {feeID: int, big: bigint, label: text, due: date, paid: bool, amount: numeric, at: timestamp}
"""
SQL = "SELECT feeid, big, label, due, paid, amount, at, NULL::text AS reject_reason FROM campus.fee\n"
ROWS = ("INSERT INTO campus.fee SELECT g, g * 4294967296, 'fee ' || g, date '2026-01-01' + g, g % 2 = 0,"
        " (g % 7) / 2.0, timestamp '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 2000) g")


@pytest.fixture
def fee(tmp_path, server_dsn):
    p = one_object_deployment(server_dsn, tmp_path, "fee", YAML, SQL)
    with psycopg.connect(p["district"]) as conn:
        conn.execute(ROWS)
    return p


def sync(p):
    return engine.sync_object(p["graph"], "Fee", district_id="0101", source_dsn=p["district"],
                              state_dsn=p["state"], scope=engine.Scope(2027))


def test_the_stored_hash_equals_the_districts_hash_of_the_same_row(fee):
    sync(fee)
    from campus_sync.engine import digest

    spec = fee["graph"].spec("Fee")
    with psycopg.connect(fee["district"]) as conn:
        at_district = dict(conn.execute(psycopg.sql.SQL("SELECT d.feeid, {} FROM campus.fee d").format(
            digest.row_hash_expr(spec, "d"))).fetchall())
    with psycopg.connect(fee["state"]) as conn:
        stored = dict(conn.execute("SELECT feeid, campus_row_hash FROM state.fee").fetchall())
    assert stored == at_district and len(stored) == 2000


def test_a_state_row_changed_outside_the_engine_is_repaired_by_the_next_resync(fee):
    sync(fee)
    with psycopg.connect(fee["state"]) as conn:  # a DBA's fix at the state, not at the district
        conn.execute("UPDATE state.fee SET amount = 8.50 WHERE feeid = 17")  # district has 1.5
        conn.execute("UPDATE state.fee SET label = NULL WHERE feeid = 1800")
        conn.execute("DELETE FROM state.fee WHERE feeid = 900")
    r = sync(fee)
    assert (r.updated, r.inserted, r.deleted) == (2, 1, 0)
    assert (sync(fee).copied, sync(fee).updated) == (0, 0)


def test_a_state_made_before_the_column_gets_it_and_stays_unchanged(fee):
    sync(fee)
    with psycopg.connect(fee["state"]) as conn:  # as an older release created it
        conn.execute("ALTER TABLE state.fee DROP COLUMN campus_row_hash")
    with psycopg.connect(fee["state"]) as conn:
        schema.ensure_state_schema(conn, fee["graph"])
        assert conn.execute("SELECT count(*) FROM state.fee WHERE campus_row_hash IS NULL").fetchone() == (0,)
    r = sync(fee)
    assert (r.copied, r.updated, r.inserted, r.deleted, r.unchanged) == (0, 0, 0, 0, 2000)
