"""Shared setup for the selective sync, report, Clear History and verification tests.

`synced`: like the root `deployment` fixture (fresh state + two seeded demo districts wired
through AIRFLOW_CONN_*), with district 0101 fully synced into the state by the engine (plain
Python, no DAG): the baseline every test then damages on purpose. Seeding and the full sync run
once per session into template databases; each test gets fresh copies (CREATE DATABASE ...
TEMPLATE), so no test sees another's damage.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from selective_helpers import DISTRICT, YEAR, q

from campus_sync import config, db
from campus_sync.demo import data as demo
from campus_sync.engine import sync as engine
from campus_sync.engine import schema


def _dsn(server_dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{database}"))


def _create(server_dsn: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        for attempt in range(50):  # a template's last session may still be closing
            try:
                conn.execute(stmt)
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    return _dsn(server_dsn, name)


@pytest.fixture(scope="session")
def golden(server_dsn, graph):
    """Template databases: seeded districts (as `deployment` seeds them), 0101 synced to the state."""
    cfg = config.load()
    names = {"state": "t_sel_golden_state"} | {d.id: f"t_sel_golden_district_{d.id}" for d in cfg.districts}
    dsns = {k: _create(server_dsn, v) for k, v in names.items()}
    with psycopg.connect(dsns["state"]) as conn:
        schema.ensure_state_schema(conn, graph)
    counts = {}
    for i, d in enumerate(cfg.districts):
        with psycopg.connect(dsns[d.id]) as conn:
            counts[d.id] = demo.seed_district(conn, graph, d, i, 40, 7, cfg.end_year(), cfg.state)
    engine.sync_objects(graph, graph.enabled(cfg.state), district_id=DISTRICT, source_dsn=dsns[DISTRICT],
                        state_dsn=dsns["state"], scope=engine.Scope(YEAR))
    return names, counts


@pytest.fixture
def synced(golden, server_dsn, monkeypatch):
    names, counts = golden
    cfg = config.load()
    out = {"config": cfg, "state": _create(server_dsn, "t_sel_state", names["state"]), "districts": {},
           "counts": counts}
    monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_STATE", out["state"])
    for d in cfg.districts:
        out["districts"][d.id] = _create(server_dsn, f"t_sel_district_{d.id}", names[d.id])
        monkeypatch.setenv(f"AIRFLOW_CONN_{d.conn_id.upper()}", out["districts"][d.id])
    db.dsn.cache_clear()
    yield out
    db.dsn.cache_clear()


@pytest.fixture
def student(synced):
    """Two students of 0101 with a current-year enrollment, Form, Behavior and CustomStudent rows at the state."""
    found = q(synced["state"], """
        SELECT p.personid FROM state.personidentity p
         WHERE p.district_id = %s
           AND EXISTS (SELECT 1 FROM state.enrollment e WHERE e.district_id = p.district_id
                        AND e.personid = p.personid AND e.endyear = %s)
           AND EXISTS (SELECT 1 FROM state.form f WHERE f.district_id = p.district_id AND f.personid = p.personid)
           AND EXISTS (SELECT 1 FROM state.behavior b WHERE b.district_id = p.district_id AND b.personid = p.personid)
           AND EXISTS (SELECT 1 FROM state.customstudent c WHERE c.district_id = p.district_id
                        AND c.personid = p.personid)
         ORDER BY p.personid LIMIT 2""", (DISTRICT, YEAR))
    assert len(found) == 2, "demo data has no two students with enrollments, forms and behaviors"
    return found[0][0], found[1][0]
