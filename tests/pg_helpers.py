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
