"""The demo data covers every object a NV or BIE deployment syncs : seeded into a real
district database, each enabled object's extract returns rows the state accepts for the school year, AttDayAggregation is in
step with the daily attendance, and the demo's refresh routine is there."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from campus_sync import config
from campus_sync.tools import attendance
from campus_sync.demo import data as demo
from campus_sync.engine import sync as engine

pytestmark = pytest.mark.db


@pytest.mark.parametrize("state", ["NV", "BIE"])
def test_demo_rows_for_every_enabled_object(state, make_db, graph):
    dsn = make_db(f"t_att_cover_{state.lower()}")
    district = config.District("X01", "Example District", "campus_district_x01")
    with psycopg.connect(dsn) as conn:
        counts = demo.seed_district(conn, graph, district, 0, 30, 11, 2027, state)
        for name in graph.enabled(state):
            query = engine.source_query(graph, graph.spec(name), engine.Scope(2027), conn)  # what a resync reads
            n = conn.execute(sql.SQL("SELECT count(*) FROM ({}) x WHERE reject_reason IS NULL").format(
                sql.SQL(query))).fetchone()[0]
            assert n > 0, f"{state}: the demo has no {name} rows the state accepts"
        assert counts[attendance.AGGREGATE] > 0
        assert conn.execute("SELECT count(*) FROM campus.attendance").fetchone()[0] == 2 * counts[attendance.AGGREGATE]
        (recomputed, inserted, updated, deleted), = conn.execute(
            "SELECT * FROM campus.refresh_attendance_aggregation(2027)").fetchall()
        assert recomputed > 0 and (inserted, updated, deleted) == (0, 0, 0)
