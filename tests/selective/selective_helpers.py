"""Helpers for the selective sync and verification tests (state rows as JSON, damage)."""

from __future__ import annotations

import psycopg

YEAR = 2027
DISTRICT = "0101"


def q(dsn: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def execute(dsn: str, query: str, params=()) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).rowcount


def rows_by_key(dsn: str, graph, names, column: str, key: int, district: str = DISTRICT) -> dict[str, list]:
    """Every state row (as JSON, without synced_at) of each object whose `column` is `key`."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for name in names:
            out[name] = [r[0] for r in conn.execute(
                f"SELECT to_jsonb(t) - 'synced_at' FROM state.{graph.spec(name).table} t"
                f" WHERE district_id = %s AND {column.lower()} = %s ORDER BY 1", (district, key))]
    return out


def all_rows(dsn: str, graph, names, district: str = DISTRICT) -> dict[str, list]:
    out = {}
    with psycopg.connect(dsn) as conn:
        for name in names:
            out[name] = [r[0] for r in conn.execute(
                f"SELECT to_jsonb(t) - 'synced_at' FROM state.{graph.spec(name).table} t"
                " WHERE district_id = %s ORDER BY 1", (district,))]
    return out


def copy_row_with_key(dsn: str, table: str, key_col: str, new_key: int, where: str, params=()) -> None:
    """Insert an extra state row: a copy of an existing one under a new key (the generated
    row hash is computed again by PostgreSQL)."""
    with psycopg.connect(dsn) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT quote_ident(column_name) FROM information_schema.columns WHERE table_schema = 'state'"
            " AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position", (table,))]
    cols, picked = ", ".join(names), ", ".join(f"r.{c}" for c in names)
    execute(dsn, f"INSERT INTO state.{table} ({cols}) SELECT {picked}"
                 f" FROM (SELECT * FROM state.{table} WHERE {where} LIMIT 1) t,"
                 f" jsonb_populate_record(NULL::state.{table},"
                 f" to_jsonb(t) || jsonb_build_object('{key_col.lower()}', %s::bigint)) AS r", (*params, new_key))
