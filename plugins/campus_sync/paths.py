"""Where the project's data lives; overridable so a deployment can move `include/`."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def include_dir() -> Path:
    """`include/` of the project, or `$CAMPUS_SYNC_INCLUDE` (e.g. /opt/airflow/include)."""
    return Path(os.environ.get("CAMPUS_SYNC_INCLUDE", PROJECT_ROOT / "include"))


def hierarchy_dir() -> Path:
    return include_dir() / "hierarchy"


def sql_dir() -> Path:
    return include_dir() / "sql"


def home() -> Path:
    """`$CAMPUS_SYNC_HOME` (default `.campus_sync/` in the project): embedded database, caches.

    Same rule as `db.home()`, here so that parse-time code need not import the database layer.
    """
    return Path(os.environ.get("CAMPUS_SYNC_HOME", PROJECT_ROOT / ".campus_sync"))
