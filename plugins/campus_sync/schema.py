"""DDL for the district (source) and state schemas, derived from the validated hierarchy.

Identifiers come only from the hierarchy (validated names) and are quoted with
`psycopg.sql.Identifier`; nothing here is built from user input.

- District schema `campus`: one table per object with its declared columns and key. No foreign
  keys: district databases are where orphans come from, and the state must count them.
- State schema `state`: the same columns plus `district_id`, keyed by (district_id, key), with a
  foreign key to every ancestor whose key it carries (ON DELETE CASCADE: a row the district no
  longer has takes its dependants with it). History tables live in schema `sync`
  (include/sql/state_history.sql).
- District-only tables (not objects, never synced): `include/sql/district_*.sql`, e.g. the daily
  attendance the district's aggregation refresh reads.
"""

from __future__ import annotations

from psycopg import sql

from campus_sync import paths
from campus_sync.hierarchy import Hierarchy, ObjectSpec
from campus_sync.hierarchy.model import COLUMN_TYPES, YEAR_COLUMN

DISTRICT_SCHEMA = "campus"
STATE_SCHEMA = "state"
HISTORY_SCHEMA = "sync"


def ident(column: str) -> sql.Identifier:
    """Column identifier as PostgreSQL stores it (camelCase declared, folded to lower case)."""
    return sql.Identifier(column.lower())


def table(schema: str, spec: ObjectSpec) -> sql.Composed:
    return sql.Identifier(schema, spec.table)


def _columns(spec: ObjectSpec) -> list[sql.Composable]:
    return [sql.SQL("{} {}").format(ident(c), sql.SQL(COLUMN_TYPES[t])) for c, t in spec.columns]


def district_ddl(spec: ObjectSpec) -> list[sql.Composable]:
    cols = _columns(spec) + [
        sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(ident(k) for k in spec.key))
    ]
    out: list[sql.Composable] = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            table(DISTRICT_SCHEMA, spec), sql.SQL(", ").join(cols)
        )
    ]
    for col in sorted({f.column for f in spec.foreign_keys} | ({spec.selective_key} - {None})):
        if (col,) != spec.key:
            out.append(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(f"{spec.table}_{col.lower()}_idx"), table(DISTRICT_SCHEMA, spec), ident(col)))
    return out


def state_ddl(graph: Hierarchy, spec: ObjectSpec) -> list[sql.Composable]:
    cols: list[sql.Composable] = [sql.SQL("district_id text NOT NULL")] + _columns(spec) + [
        sql.SQL("synced_at timestamptz NOT NULL DEFAULT now()"),
        sql.SQL("PRIMARY KEY (district_id, {})").format(sql.SQL(", ").join(ident(k) for k in spec.key)),
    ]
    for fk in spec.foreign_keys:
        target = graph.spec(fk.target)
        cols.append(sql.SQL(
            "FOREIGN KEY (district_id, {}) REFERENCES {} (district_id, {}) ON DELETE CASCADE"
        ).format(ident(fk.column), table(STATE_SCHEMA, target), ident(fk.target_column)))
    out: list[sql.Composable] = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table(STATE_SCHEMA, spec), sql.SQL(", ").join(cols))
    ]
    indexed = {f.column for f in spec.foreign_keys}
    if spec.school_year_scoped:
        indexed.add(YEAR_COLUMN)
    for col in sorted(indexed):
        if (col,) != spec.key:
            out.append(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (district_id, {})").format(
                sql.Identifier(f"{spec.table}_{col.lower()}_idx"), table(STATE_SCHEMA, spec), ident(col)))
    return out


def history_ddl() -> str:
    """Every `include/sql/state_*.sql` file (history, alerts, verification...), in name order."""
    files = sorted(paths.sql_dir().glob("state_*.sql"))
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def district_only_ddl() -> str:
    """Every `include/sql/district_*.sql` file, in name order: district tables that are not synced
    objects (e.g. the daily attendance AttDayAggregation is computed from)."""
    files = sorted(paths.sql_dir().glob("district_*.sql"))
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def ensure_district_schema(conn, graph: Hierarchy, names: list[str] | None = None) -> None:
    """Create the district tables (idempotent). `conn` is a psycopg connection."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(DISTRICT_SCHEMA)))
        for name in names or graph.names:
            for stmt in district_ddl(graph.spec(name)):
                conn.execute(stmt)
        extra = district_only_ddl()
        if extra:
            conn.execute(extra)


def ensure_state_schema(conn, graph: Hierarchy) -> None:
    """Create state object tables (parents first) and the history tables (idempotent)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('campus_sync:ddl'))")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STATE_SCHEMA)))
        for name in graph.names:
            for stmt in state_ddl(graph, graph.spec(name)):
                conn.execute(stmt)
        conn.execute(history_ddl())
