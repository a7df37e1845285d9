"""Where the state and district databases are: Airflow connections, else an embedded PostgreSQL.

Lookup order for a connection id (e.g. `campus_state`, `campus_district_0101`):
1. `AIRFLOW_CONN_<ID>` in the environment (URI or JSON, as Airflow accepts it);
2. Airflow's own connection store, when running inside Airflow;
3. the embedded server from the `pgserver` wheel (data in `$CAMPUS_SYNC_HOME/pgdata`, default
   `.campus_sync/` in the project), database named after the connection id.
The embedded server is started on first use and left running, so Airflow tasks, the CLI and
psql share it; `campus-sync dsn state` prints its URI.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg

from campus_sync import paths


def home() -> Path:
    return Path(os.environ.get("CAMPUS_SYNC_HOME", paths.PROJECT_ROOT / ".campus_sync"))


def _from_env(conn_id: str) -> str | None:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    raw = raw.strip()
    if raw.startswith("{"):
        c = json.loads(raw)
        auth = ""
        if c.get("login"):
            auth = quote(c["login"], safe="")
            if c.get("password"):
                auth += ":" + quote(c["password"], safe="")
            auth += "@"
        port = f":{c['port']}" if c.get("port") else ""
        return f"postgresql://{auth}{c.get('host', 'localhost')}{port}/{c.get('schema', '')}"
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    return raw


def _from_airflow(conn_id: str) -> str | None:
    if "airflow" not in sys.modules:  # not running inside Airflow: do not import it
        return None
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - not found, or no metadata access here
        return None
    uri = conn.get_uri()
    return "postgresql://" + uri.split("://", 1)[1] if "://" in uri else uri


@functools.lru_cache(maxsize=1)
def embedded_server():
    """Start (or attach to) the embedded PostgreSQL; it keeps running after this process."""
    import pgserver

    pgdata = home() / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(pgdata, cleanup_mode=None)


def embedded_dsn(database: str) -> str:
    server = embedded_server()
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            from psycopg import sql

            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server.get_uri(database)


@functools.lru_cache(maxsize=256)
def dsn(conn_id: str) -> str:
    """The libpq URI for an Airflow connection id, falling back to the embedded server.

    Cached per process: connections do not change during a task or a `dag.test()` run.
    """
    return _from_env(conn_id) or _from_airflow(conn_id) or embedded_dsn(conn_id)


def is_embedded(conn_id: str) -> bool:
    return _from_env(conn_id) is None and _from_airflow(conn_id) is None


def connect(conn_id_or_dsn: str, **kwargs) -> psycopg.Connection:
    target = conn_id_or_dsn if "://" in conn_id_or_dsn or "=" in conn_id_or_dsn else dsn(conn_id_or_dsn)
    return psycopg.connect(target, **kwargs)
