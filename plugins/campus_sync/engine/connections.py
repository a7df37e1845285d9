"""Connections kept open from one object's sync to the next, within an explicit block.

A connection is a backend started: ~2 ms of an unchanged small object's ~5 ms here, paid twice
per object (state and district). A run that syncs many objects in one process (a selective
sync's task, the CLI, `bench district`) wraps them in `reusing()`; each sync then takes an idle
connection to its DSN if there is one and gives both back when it ends cleanly. Outside such a
block nothing is kept: an Airflow task that syncs one object opens and closes its own, and no
process holds idle connections that would block a `DROP DATABASE` elsewhere.

Only connections that ended their transaction cleanly are kept (every engine setting is
transaction-local: `set_config(..., true)`, `SET LOCAL`, temp tables `ON COMMIT DROP`); one
that failed, or is broken, is closed. A kept connection is checked with a round trip before it
is reused, so a server restarted in between costs a reconnect, not a failed object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from psycopg.pq import TransactionStatus

_IDLE: ContextVar[dict[tuple[str, str], list[psycopg.Connection]] | None] = ContextVar("campus_sync_idle", default=None)
_LOCK = threading.Lock()  # a block's syncs may run on several threads (the ContextVar is copied)
KEEP_PER_DSN = 2


@contextmanager
def reusing() -> Iterator[None]:
    """Keep the syncs' connections open for the next sync within this block; close them at
    its end. Nested blocks share the outer one's connections."""
    if _IDLE.get() is not None:
        yield
        return
    idle: dict[tuple[str, str], list[psycopg.Connection]] = {}
    token = _IDLE.set(idle)
    try:
        yield
    finally:
        _IDLE.reset(token)
        with _LOCK:
            kept = [c for conns in idle.values() for c in conns]
            idle.clear()
        for conn in kept:
            conn.close()


def take(side: str, dsn: str) -> psycopg.Connection | None:
    """An idle connection of `side` ("state", "district": kept apart, as a side sets its own
    connection attributes) to `dsn` kept by the enclosing `reusing()` block and still alive,
    or None (open a new one)."""
    idle = _IDLE.get()
    while idle is not None:
        with _LOCK:
            conns = idle.get((side, dsn))
            conn = conns.pop() if conns else None
        if conn is None:
            return None
        try:
            conn.autocommit = True  # one round trip: no BEGIN, no ROLLBACK
            conn.execute("SELECT 1")
            conn.autocommit = False
            return conn
        except BaseException as exc:  # dead: try the next one; interrupted: close it, then stop
            conn.close()
            if not isinstance(exc, psycopg.Error):
                raise
    return None


def give_back(conn: psycopg.Connection | None, side: str, dsn: str, clean: bool) -> None:
    """End `conn`'s use by one sync: kept for the next one when the sync ended `clean`ly inside
    a `reusing()` block and the connection is idle and healthy; otherwise rolled back (when
    not `clean`) and closed, as leaving `with conn:` would."""
    if conn is None or conn.closed:
        return
    idle = _IDLE.get()
    if clean and not conn.broken and conn.info.transaction_status == TransactionStatus.INTRANS:
        conn.commit()  # what leaving `with conn:` cleanly does
    if (idle is not None and clean and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE):
        with _LOCK:
            conns = idle.setdefault((side, dsn), [])
            if len(conns) < KEEP_PER_DSN:
                conns.append(conn)
                return
    if not clean and not conn.broken:
        try:
            conn.rollback()
        except psycopg.Error:
            pass
    conn.close()
