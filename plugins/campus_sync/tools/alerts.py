"""Process alerts in the state database (`sync.process_alert`, include/sql/state_alerts.sql).

Campus's resync tool: when the state requests a resync of a district, the district's Process Alerts show a
"State Resync Requested" message in the Vertical Interoperability category. The district cannot
cancel the resync and does not see which objects were requested, so an alert carries the
district, when it was requested and a message, never the objects. Plain Python + psycopg.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.rows import dict_row

VERTICAL_INTEROPERABILITY = "Vertical Interoperability"
STATE_RESYNC_REQUESTED = "State Resync Requested"
FIELDS = ("id", "district", "category", "name", "requested_at", "message")


def school_year_label(end_year: int) -> str:
    """2027 -> '2026-27'."""
    return f"{end_year - 1}-{end_year % 100:02d}"


def add_state_resync_requested(conn: psycopg.Connection, districts: Sequence[str], *, end_year: int,
                               dag_id: str | None, run_id: str | None) -> None:
    """One alert per district, in the caller's transaction (not committed here).

    `tasks.start_request` calls this just before `history.create_batch`, whose commit makes the
    alerts and the batch appear together (same `now()`), or neither. Idempotent per DAG run.
    """
    for district in districts:
        conn.execute(
            """INSERT INTO sync.process_alert (district_id, category, name, message, dag_id, run_id)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (name, dag_id, run_id, district_id) DO NOTHING""",
            (district, VERTICAL_INTEROPERABILITY, STATE_RESYNC_REQUESTED,
             f"The state requested a resync of district {district}'s data for the "
             f"{school_year_label(end_year)} school year. It runs automatically and cannot be "
             "cancelled from the district.", dag_id, run_id),
        )


def list_alerts(conn: psycopg.Connection, district_id: str | None = None, limit: int = 100) -> list[dict]:
    """Newest first, in the `campus-sync alerts --json` shape (no objects, by design)."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT id, district_id AS district, category, name, requested_at, message
             FROM sync.process_alert
            WHERE (%(d)s::text IS NULL OR district_id = %(d)s)
            ORDER BY requested_at DESC, id DESC LIMIT %(n)s""",
        {"d": district_id, "n": limit},
    ).fetchall()
