"""Shared test setup.

At import (before anything imports Airflow) the session gets its own Airflow home (SQLite),
its own `CAMPUS_SYNC_HOME` (so the embedded PostgreSQL of the tests is not the demo's) and a
test configuration with two districts and a fixed school year. Set `CAMPUS_SYNC_TEST_DSN` to a
PostgreSQL URI (database `postgres` of a server you own) to run against that server instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_TMP = Path(tempfile.mkdtemp(prefix="campus-sync-tests-"))
TEST_CONFIG = _TMP / "campus_sync.yaml"
TEST_CONFIG.write_text(
    "state: KY\n"
    "full_resync_schedule: '0 2 * * 0'\n"
    "current_school_year: 2027\n"
    "state_conn_id: campus_state\n"
    "embedded_postgres: true\n"
    "districts:\n"
    "  - {id: '0101', name: Abbott Independent}\n"
    "  - {id: '0102', name: Campus County Public Schools}\n"
    "edfi:\n"
    "  configurations:\n"
    "    - {name: demo, district: '0101', school_year: current, conn_id: edfi_demo, state: KY, resources: [schools,"
    " sessions, courses, courseOfferings, sections, students, studentSchoolAssociations, studentSectionAssociations,"
    " staffs, staffEducationOrganizationAssignmentAssociations, staffSectionAssociations]}\n"
    "    - {name: tn, district: '0102', school_year: current, conn_id: edfi_tn, state: TN, resources: [schools]}\n"
)
os.environ.update({
    "CAMPUS_SYNC_HOME": str(_TMP / "home"),
    "CAMPUS_SYNC_CONFIG": str(TEST_CONFIG),
    "AIRFLOW_HOME": str(_TMP / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_TMP}/airflow/airflow.db",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
})
(_TMP / "airflow").mkdir()
(_TMP / "runtime").mkdir(mode=0o700)
os.environ.setdefault("XDG_RUNTIME_DIR", str(_TMP / "runtime"))

from pg_helpers import dsn_for  # noqa: E402 - after sys.path has tests/


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under `make test` (two pytest-xdist workers) the tests of tests/live run on one worker, in
    file order: they share the session's live Airflow, and the page's tests build on each other
    like a user's session. Every other test is its own unit, given to whichever worker is free."""
    from xdist.scheduler import LoadScopeScheduling

    class LiveTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/live" if nodeid.startswith("tests/live/") else nodeid

    return LiveTogether(config, log)


def pytest_sessionfinish(session, exitstatus):
    """Stop the embedded server this test run started, then remove its files."""
    if "campus_sync.db" in sys.modules and not os.environ.get("CAMPUS_SYNC_TEST_DSN"):
        from campus_sync import db

        if db.embedded_server.cache_info().currsize:
            import pgserver

            srv = db.embedded_server()
            try:
                pgserver.pg_ctl(["-w", "stop"], pgdata=srv.pgdata, user=srv.system_user)
            except Exception:  # noqa: BLE001 - best effort
                pass
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def graph():
    from campus_sync import hierarchy

    return hierarchy.load()


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """URI of database `postgres` on the test server (embedded unless CAMPUS_SYNC_TEST_DSN)."""
    if os.environ.get("CAMPUS_SYNC_TEST_DSN"):
        return os.environ["CAMPUS_SYNC_TEST_DSN"]
    import psycopg

    from campus_sync import db

    uri = db.embedded_server().get_uri("postgres")
    # The session's own throwaway server: no fsync. Tests create hundreds of tables and databases,
    # and on a busy disk each sync of them costs more than the test itself.
    with psycopg.connect(uri, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    return uri


@pytest.fixture
def make_db(server_dsn):
    """Factory: a fresh, empty database by name (dropped first); returns its URI."""
    import psycopg
    from psycopg import sql

    def make(name: str) -> str:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return dsn_for(server_dsn, name)

    return make


# Seeded deployments, built once per session and per configuration: each test gets copies made
# with CREATE DATABASE ... TEMPLATE (a file copy), not a new seeding of every object.
_SEEDED: dict[str, dict] = {}


def _seeded_templates(server_dsn: str, cfg, graph) -> dict:
    """Template databases of a fresh state (schema made) and the seeded districts of `cfg`."""
    import hashlib
    import json

    import psycopg
    from psycopg import sql

    from campus_sync.demo import data as demo
    from campus_sync.engine import schema

    key = hashlib.sha1(json.dumps([cfg.state, cfg.end_year(), [d.id for d in cfg.districts], list(graph.names)])
                       .encode()).hexdigest()[:10]
    if key in _SEEDED:
        return _SEEDED[key]

    def fresh(name: str) -> str:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return dsn_for(server_dsn, name)

    out = {"state": f"t_tpl_{key}_state", "districts": {}, "counts": {}}
    with psycopg.connect(fresh(out["state"])) as conn:
        schema.ensure_state_schema(conn, graph)
    for i, d in enumerate(cfg.districts):
        name = f"t_tpl_{key}_district_{d.id}"
        with psycopg.connect(fresh(name)) as conn:
            out["counts"][d.id] = demo.seed_district(conn, graph, d, i, 40, 7, cfg.end_year(), cfg.state)
        out["districts"][d.id] = name
    _SEEDED[key] = out
    return out


def _copy_db(server_dsn: str, name: str, template: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return dsn_for(server_dsn, name)


@pytest.fixture
def deployment(server_dsn, graph, monkeypatch):
    """Fresh state + two seeded demo districts, wired through AIRFLOW_CONN_* like production.

    Returns a dict with the config, DSNs and the seeded row counts. The databases are copies of
    the session's seeded templates: the same rows a fresh seeding gives, at a copy's cost.
    """
    import copy

    from campus_sync import config, db

    cfg = config.load()
    tpl = _seeded_templates(server_dsn, cfg, graph)
    out = {"config": cfg, "state": _copy_db(server_dsn, "t_campus_state", tpl["state"]), "districts": {},
           "counts": copy.deepcopy(tpl["counts"])}
    monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_STATE", out["state"])
    for d in cfg.districts:
        dsn = _copy_db(server_dsn, f"t_campus_district_{d.id}", tpl["districts"][d.id])
        monkeypatch.setenv(f"AIRFLOW_CONN_{d.conn_id.upper()}", dsn)
        out["districts"][d.id] = dsn
    db.dsn.cache_clear()
    yield out
    db.dsn.cache_clear()


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the session's Airflow metadata DB once (SQLite, ~4 s)."""
    from campus_sync.orchestration import runner

    runner.prepare(Path(os.environ["AIRFLOW_HOME"]))
    return True
