"""One database streaming into another: `COPY (...) TO STDOUT` piped into `COPY ... FROM STDIN`.

Chunk by chunk, so memory stays constant whatever the row count; the engine's staging, its
direct first load, the kept-key and row listings, and the verification all move rows this way.
"""

from __future__ import annotations

import psycopg
from psycopg import sql


def copy_across(source: psycopg.Connection, copy_out: sql.Composable, into: psycopg.Cursor,
                copy_in: sql.Composable) -> int:
    """Run `copy_out` (a `COPY ... TO STDOUT`) at `source` and feed it to `copy_in` (a
    `COPY ... FROM STDIN`) on `into`; return the rows `into` received."""
    with source.cursor().copy(copy_out) as out, into.copy(copy_in) as sink:
        for chunk in out:
            sink.write(chunk)
    return into.rowcount
