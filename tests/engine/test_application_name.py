"""The package's connections name themselves in `pg_stat_activity`: `campus-sync`, and inside an
Airflow task `campus-sync:<dag_id>/<task_id>`, so a DBA (and `bench airflow`) can count what
each task holds on the state and on a district; a name the connection's definition sets wins."""

from __future__ import annotations

import psycopg
import pytest

from campus_sync import db
from campus_sync.engine import connections
from campus_sync.engine import sync as engine
from campus_sync.orchestration import tasks

pytestmark = pytest.mark.db


def names_on(dsn: str) -> dict[str, int]:
    """application_name → backends on `dsn`'s database, other than this query's own."""
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT application_name, count(*) FROM pg_stat_activity"
                                 " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                                 " GROUP BY 1").fetchall())


@pytest.fixture
def in_task(monkeypatch):
    """What Airflow's task runner exports before a task runs."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "campus_full_resync")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "District")


def test_an_object_syncs_connections_carry_the_task_in_their_name(deployment, graph, in_task):
    cfg = deployment["config"]
    district = cfg.district("0101")
    with connections.reusing():  # the sync's two connections stay open (idle) until the block ends
        engine.sync_object(graph, "District", district_id="0101", source_dsn=db.dsn(district.conn_id),
                           state_dsn=tasks.state_dsn(), scope=engine.Scope(end_year=cfg.end_year()))
        on_state, on_district = names_on(deployment["state"]), names_on(deployment["districts"]["0101"])
    assert on_state == {"campus-sync:campus_full_resync/District": 1}
    assert on_district == {"campus-sync:campus_full_resync/District": 1}


def test_outside_a_task_the_name_is_the_packages(deployment, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    monkeypatch.delenv("AIRFLOW_CTX_TASK_ID", raising=False)
    with psycopg.connect(tasks.state_dsn()) as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("campus-sync",)


def test_the_name_follows_the_task_in_one_process(deployment, monkeypatch):
    """dag.test() runs every task in one process: each connection is named after the task running."""
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "campus_full_resync")
    for task_id in ("District", "School"):
        monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", task_id)
        with psycopg.connect(tasks.state_dsn()) as conn:
            assert conn.execute("SELECT current_setting('application_name')").fetchone() == (
                f"campus-sync:campus_full_resync/{task_id}",)


def test_a_name_the_connection_sets_wins_and_a_long_one_is_cut_to_postgres_limit(deployment, monkeypatch, in_task):
    state = deployment["state"]
    monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_STATE", state + ("&" if "?" in state else "?") + "application_name=state-dba-watch")
    db.dsn.cache_clear()
    with psycopg.connect(tasks.state_dsn()) as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("state-dba-watch",)
    monkeypatch.setenv("AIRFLOW_CONN_CAMPUS_STATE", deployment["state"])
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "district.Élève" + "AttendanceDetail" * 4)
    db.dsn.cache_clear()
    name = db.application_name()
    assert name == "campus-sync:campus_full_resync/district.?l?veAttendanceDetailAt"  # 63 printable ASCII
    with psycopg.connect(tasks.state_dsn()) as conn:  # what PostgreSQL shows is exactly that
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (name,)
