"""An NV deployment : a fresh state and two seeded demo districts, wired through
AIRFLOW_CONN_* like production, with $CAMPUS_SYNC_CONFIG pointing at an NV configuration (DAG
files read it at parse time, so the DAGs built in these tests are NV's)."""

from __future__ import annotations

import psycopg
import pytest


@pytest.fixture
def nv_config(tmp_path, monkeypatch):
    path = tmp_path / "nevada.yaml"
    path.write_text(
        "state: NV\n"
        "embedded_postgres: true\n"
        "current_school_year: 2027\n"
        "state_conn_id: campus_state\n"
        # The per-district shape everywhere, so each district's refresh is a task of its own here;
        # the weekly resync's default per-object shape is checked in test_attendance_dags.py.
        "full_resync_shape: per_district_object\n"
        "districts:\n"
        "  - {id: NV02, name: Clark County School District}\n"
        "  - {id: NV16, name: Washoe County School District}\n"
    )
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(path))
    from campus_sync import config

    return config.load()


@pytest.fixture
def nv(nv_config, make_db, graph, monkeypatch):
    from campus_sync import db
    from campus_sync.demo import data as demo
    from campus_sync.engine import schema

    cfg = nv_config
    out = {"config": cfg, "state": make_db("t_att_state"), "districts": {}, "counts": {}}
    monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_STATE", out["state"])
    with psycopg.connect(out["state"]) as conn:
        schema.ensure_state_schema(conn, graph)
    for i, d in enumerate(cfg.districts):
        dsn = make_db(f"t_att_district_{d.id.lower()}")
        monkeypatch.setenv(f"AIRFLOW_CONN_{d.conn_id.upper()}", dsn)
        with psycopg.connect(dsn) as conn:
            out["counts"][d.id] = demo.seed_district(conn, graph, d, i, 30, 7, cfg.end_year(), cfg.state)
        out["districts"][d.id] = dsn
    db.dsn.cache_clear()
    yield out
    db.dsn.cache_clear()
