"""Helpers shared by tests that manage their own databases (importable: `from pg_helpers import dsn_for`).

Not in conftest.py: several test folders have a conftest.py of their own, so `from conftest import`
resolves to whichever one was imported first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def dsn_for(server_dsn: str, database: str) -> str:
    """The URI of `database` on the same server as `server_dsn`."""
    parts = urlsplit(server_dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def one_object_deployment(server_dsn: str, root, name: str, yaml_text: str, extract_sql: str) -> dict:
    """A synthetic one-object hierarchy under `root` (YAML + extract query), compiled, with a
    fresh state and district database `t_<name>_state` / `t_<name>_district` holding its schemas.
    Returns {"graph", "state", "district"} (the district table is empty)."""
    import psycopg
    from psycopg import sql

    from campus_sync.engine import schema
    from campus_sync.hierarchy import compile_path

    (root / "hierarchy").mkdir()
    (root / "sql" / "extract").mkdir(parents=True)
    (root / "hierarchy" / f"{name}.yaml").write_text(yaml_text)
    (root / "sql" / "extract" / f"{name}.sql").write_text(extract_sql)
    graph = compile_path(root / "hierarchy")
    dsns = {}
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        for side in ("state", "district"):
            db = f"t_{name}_{side}"
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            dsns[side] = dsn_for(server_dsn, db)
    with psycopg.connect(dsns["state"]) as conn:
        schema.ensure_state_schema(conn, graph)
    with psycopg.connect(dsns["district"]) as conn:
        schema.ensure_district_schema(conn, graph)
    return {"graph": graph, **dsns}
