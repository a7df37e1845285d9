"""Deployment configuration: the state, the districts and their connections, the schedule.

Read from a YAML file (no database, no network), so DAG files can build their forms at parse
time. Districts map to Airflow connections by convention: `campus_district_<id>`.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from campus_sync import paths

DISTRICT_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,20}$")


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class District:
    id: str
    name: str
    conn_id: str

    @property
    def label(self) -> str:
        return f"{self.id} {self.name}"


@dataclass(frozen=True)
class Config:
    state: str
    full_resync_schedule: str
    current_school_year: int | None  # None: derive from today's date
    state_conn_id: str
    districts: tuple[District, ...]
    source: str
    attendance_refresh: AttendanceRefresh = field(default_factory=lambda: AttendanceRefresh())

    def district(self, district_id: str) -> District:
        for d in self.districts:
            if d.id == str(district_id):
                return d
        known = ", ".join(d.id for d in self.districts)
        raise ConfigError(f"unknown district {district_id!r}; configured districts: {known}")

    @property
    def district_ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.districts)

    def end_year(self, school_year: str = "current", today: dt.date | None = None) -> int:
        """End year of the current/previous/next school year (July 1 starts a new one)."""
        if self.current_school_year is not None:
            current = self.current_school_year
        else:
            today = today or dt.date.today()
            current = today.year + 1 if today.month >= 7 else today.year
        return current + {"current": 0, "previous": -1, "next": 1}[school_year]


def config_path() -> Path:
    return Path(os.environ.get("CAMPUS_SYNC_CONFIG", paths.include_dir() / "config" / "campus_sync.yaml"))


def parse(path: Path) -> Config:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping")
    state = str(doc.get("state", "")).upper()
    if not re.match(r"^[A-Z]{2,3}$", state):
        raise ConfigError(f"{path}: 'state' must be a state code like KY")
    year = doc.get("current_school_year", "auto")
    if year != "auto" and not (isinstance(year, int) and 2000 <= year <= 2100):
        raise ConfigError(f"{path}: 'current_school_year' must be 'auto' or an end year like 2027")
    raw = doc.get("districts")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: 'districts' must be a non-empty list")
    districts: list[District] = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict) or "id" not in d:
            raise ConfigError(f"{path}: districts[{i}] needs an 'id'")
        did = str(d["id"])
        if not DISTRICT_ID_RE.match(did):
            raise ConfigError(f"{path}: districts[{i}]: id {did!r} must be letters, digits or _")
        if did in (x.id for x in districts):
            raise ConfigError(f"{path}: district {did!r} is listed twice")
        districts.append(District(did, str(d.get("name", did)), str(d.get("conn_id", f"campus_district_{did}"))))
    return Config(
        state=state,
        full_resync_schedule=str(doc.get("full_resync_schedule", "0 2 * * 0")),
        current_school_year=None if year == "auto" else int(year),
        state_conn_id=str(doc.get("state_conn_id", "campus_state")),
        districts=tuple(sorted(districts, key=lambda x: x.id)),
        source=str(path),
        attendance_refresh=parse_attendance_refresh(doc.get("attendance_refresh"), path),
    )


# ----------------------------------------------------------------- attendance refresh (issue 13)
# Seed 003: the district's Attendance Aggregation Refresh runs before AttDayAggregation syncs.
# Real districts have their own routine, so the statement is per deployment; the demo's
# (include/sql/demo/attendance_refresh.sql) is the default. It runs at the district with bound
# parameters only: %(end_year)s (the request's school year) and optionally %(district_id)s.
DEFAULT_ATTENDANCE_REFRESH_SQL = "SELECT * FROM campus.refresh_attendance_aggregation(%(end_year)s)"
ATTENDANCE_REFRESH_PARAMS = ("end_year", "district_id")


@dataclass(frozen=True)
class AttendanceRefresh:
    enabled: bool = True  # false: this deployment has no refresh routine; the task skips
    sql: str = DEFAULT_ATTENDANCE_REFRESH_SQL


def parse_attendance_refresh(raw, path: Path) -> AttendanceRefresh:
    """`attendance_refresh: {sql: "...", enabled: true}` (all optional; absent = the demo's)."""
    if raw is None:
        return AttendanceRefresh()
    where = f"{path}: attendance_refresh"
    if raw is False:
        return AttendanceRefresh(enabled=False)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping like {{sql: \"SELECT ...(%(end_year)s)\"}} or false")
    unknown = sorted(set(raw) - {"sql", "enabled"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; use sql, enabled")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled must be true or false, got {enabled!r}")
    stmt = raw.get("sql", DEFAULT_ATTENDANCE_REFRESH_SQL)
    if not isinstance(stmt, str) or not stmt.strip():
        raise ConfigError(f"{where}.sql must be one SQL statement (a non-empty string)")
    stmt = stmt.strip().rstrip(";").strip()
    if ";" in stmt:
        raise ConfigError(f"{where}.sql must be one statement (no ';')")
    names = re.findall(r"%\(([^)]*)\)s", stmt)
    bad = sorted(set(names) - set(ATTENDANCE_REFRESH_PARAMS))
    if bad:
        raise ConfigError(f"{where}.sql: unknown placeholder(s) {', '.join(bad)}; "
                          f"use %(end_year)s and %(district_id)s")
    if "end_year" not in names:
        raise ConfigError(f"{where}.sql must pass the school year as %(end_year)s")
    if re.search(r"%(?!\(\w+\)s|%)", stmt):
        raise ConfigError(f"{where}.sql: a literal % must be written %%")
    return AttendanceRefresh(enabled=enabled, sql=stmt)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> Config:
    return parse(Path(path))


def load() -> Config:
    """The deployment configuration (re-read when the file changes)."""
    path = config_path()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    return _load(str(path), mtime)
