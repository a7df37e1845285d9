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
from campus_sync.hierarchy.loader import safe_load_plain

DISTRICT_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,20}$")
CONN_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
KNOWN_KEYS = ("state", "full_resync_schedule", "current_school_year", "state_conn_id", "districts",
              "embedded_postgres", "max_delete_share", "delete_guard_min_rows", "attendance_refresh",
              "edfi",  # edfi: read by campus_sync.edfi.request
              "full_resync_shape", "districts_in_parallel", "state_pool", "state_pool_slots",
              "connection_retries")
# How the weekly full resync is rendered: `per_object` (one task per object, every district inside
# it, a bounded number at a time) or `per_district_object` (one task per object per district).
FULL_RESYNC_SHAPES = ("per_object", "per_district_object")
POOL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")


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
    embedded_postgres: bool = False  # connections that resolve nowhere use the embedded server
    max_delete_share: float = 0.5  # mass-delete guard: refuse deleting more than this share...
    delete_guard_min_rows: int = 10  # ...of an object's state rows, when at least this many rows go
    attendance_refresh: AttendanceRefresh = field(default_factory=lambda: AttendanceRefresh())
    full_resync_shape: str = "per_object"
    districts_in_parallel: int = 4  # per_object: districts one object task syncs at once
    state_pool: str = "campus_state"  # per_object: the Airflow pool its object tasks run in
    state_pool_slots: int = 2  # the pool's size where this package creates it (local Airflow)
    connection_retries: ConnectionRetries = field(default_factory=lambda: ConnectionRetries())

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
        doc = safe_load_plain(path.read_text(encoding="utf-8"), path.name)
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
    unknown = sorted(str(k) for k in doc if k not in KNOWN_KEYS)
    if unknown:
        from difflib import get_close_matches

        hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := get_close_matches(k, KNOWN_KEYS, 1)) else "")
                 for k in unknown]
        raise ConfigError(f"{path}: unknown setting {', '.join(hints)}")
    schedule = doc.get("full_resync_schedule", "0 2 * * 0")
    problem = schedule_problem(schedule) if isinstance(schedule, str) else f"is not a valid cron expression{CRON_HINT}"
    if problem:
        raise ConfigError(f"{path}: 'full_resync_schedule' {schedule!r} {problem}")
    schedule = schedule.strip()
    embedded = doc.get("embedded_postgres", False)
    if not isinstance(embedded, bool):
        raise ConfigError(f"{path}: 'embedded_postgres' must be true or false")
    share = doc.get("max_delete_share", 0.5)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ConfigError(f"{path}: 'max_delete_share' must be a number in (0, 1], e.g. 0.5")
    min_rows = doc.get("delete_guard_min_rows", 10)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ConfigError(f"{path}: 'delete_guard_min_rows' must be a whole number ≥ 1")
    state_conn = doc.get("state_conn_id", "campus_state")
    if not isinstance(state_conn, str) or not CONN_ID_RE.match(state_conn):
        raise ConfigError(f"{path}: 'state_conn_id' {state_conn!r} must be a connection id (letters, digits, _)")
    shape = doc.get("full_resync_shape", "per_object")
    if shape not in FULL_RESYNC_SHAPES:
        raise ConfigError(f"{path}: 'full_resync_shape' {shape!r} must be one of {', '.join(FULL_RESYNC_SHAPES)}")
    parallel = doc.get("districts_in_parallel", 4)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= 64:
        raise ConfigError(f"{path}: 'districts_in_parallel' must be a whole number from 1 to 64, e.g. 4")
    pool = doc.get("state_pool", "campus_state")
    if not isinstance(pool, str) or not POOL_RE.match(pool):
        raise ConfigError(f"{path}: 'state_pool' {pool!r} must be an Airflow pool name (letters, digits, _ . -)")
    slots = doc.get("state_pool_slots", 2)
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 128:
        raise ConfigError(f"{path}: 'state_pool_slots' must be a whole number from 1 to 128, e.g. 2")
    raw = doc.get("districts")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: 'districts' must be a non-empty list")
    districts: list[District] = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict) or "id" not in d:
            raise ConfigError(f"{path}: districts[{i}] needs an 'id'")
        did = d["id"]
        if not isinstance(did, str):
            # YAML reads 0101 as the octal number 65 and 0102 as 66: the id must be quoted.
            raise ConfigError(f"{path}: districts[{i}]: id {did!r} must be a quoted string, e.g. id: \"0101\"")
        if not DISTRICT_ID_RE.match(did):
            raise ConfigError(f"{path}: districts[{i}]: id {did!r} must be letters, digits or _")
        if did in (x.id for x in districts):
            raise ConfigError(f"{path}: district {did!r} is listed twice")
        conn_id = d.get("conn_id", f"campus_district_{did}")
        if not isinstance(conn_id, str) or not CONN_ID_RE.match(conn_id):
            raise ConfigError(f"{path}: districts[{i}]: conn_id {conn_id!r} must be a connection id "
                              "(letters, digits, _)")
        extra = sorted(str(k) for k in d if k not in ("id", "name", "conn_id"))
        if extra:
            raise ConfigError(f"{path}: districts[{i}]: unknown field {', '.join(map(repr, extra))}")
        districts.append(District(did, str(d.get("name", did)), conn_id))
    _refuse_shared_connections(path, state_conn, districts)
    return Config(
        state=state,
        full_resync_schedule=schedule,
        current_school_year=None if year == "auto" else int(year),
        state_conn_id=state_conn,
        districts=tuple(sorted(districts, key=lambda x: x.id)),
        source=str(path),
        embedded_postgres=embedded,
        max_delete_share=float(share),
        delete_guard_min_rows=min_rows,
        attendance_refresh=parse_attendance_refresh(doc.get("attendance_refresh"), path),
        full_resync_shape=shape,
        districts_in_parallel=parallel,
        state_pool=pool,
        state_pool_slots=slots,
        connection_retries=parse_connection_retries(doc.get("connection_retries"), path),
    )


def connection_env_var(conn_id: str) -> str:
    """The environment variable Airflow reads a connection from: `AIRFLOW_CONN_` + the id
    upper-cased (`EnvironmentVariablesBackend.get_conn_value`). Ids that differ only in case
    are one connection there, so the package compares connection ids by this name."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def _refuse_shared_connections(path: Path, state_conn: str, districts: list[District]) -> None:
    """Two districts on one connection would load one district's rows under both ids (the
    state would hold them twice); a district on the state's connection would read the state."""
    owner: dict[str, District] = {}
    state_var = connection_env_var(state_conn)
    for d in sorted(districts, key=lambda x: x.id):
        var = connection_env_var(d.conn_id)
        if var == state_var:
            raise ConfigError(f"{path}: district {d.id} reads connection {d.conn_id!r}, which is the state's "
                              f"(state_conn_id {state_conn!r}; both are {var}): give the district its own conn_id")
        first = owner.setdefault(var, d)
        if first is not d:
            raise ConfigError(f"{path}: districts {first.id} and {d.id} read the same database: connections "
                              f"{first.conn_id!r} and {d.conn_id!r} are both {var} to Airflow (connection ids "
                              "ignore case); give each district its own conn_id")


# Airflow's cron presets (airflow.utils.dates.cron_presets), which the DAG's CronTriggerTimetable
# expands before croniter sees the expression; a test keeps the two equal.
CRON_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
                "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *"}


CRON_HINT = " (five fields, e.g. '0 2 * * 0', or a preset like '@weekly')"


def schedule_problem(expr: str) -> str | None:
    """What stops the weekly DAG's timetable from running `expr`, or None.

    croniter alone accepts more than the schedule can use: six or seven fields (read as
    seconds and year) and dates that never come ("0 2 31 2 *", February 31st), which the
    timetable only finds when it looks for the next run (CroniterBadDateError), so the resync
    would silently never run."""
    from croniter import CroniterBadDateError, CroniterError, croniter

    text = CRON_PRESETS.get(expr.strip(), expr.strip())
    try:
        it = croniter(text, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    except (CroniterError, ValueError, KeyError, TypeError):
        return f"is not a valid cron expression{CRON_HINT}"
    if len(it.expanded) != 5:
        return (f"has {len(it.expanded)} fields; the schedule takes five (minute hour day month weekday), "
                "e.g. '0 2 * * 0', or a preset like '@weekly'")
    try:
        it.get_next(dt.datetime)
    except CroniterBadDateError:
        return "never runs: no date matches it (e.g. February 30th), so the weekly resync would never start"
    return None


# ----------------------------------------------------------------- connection retries
MAX_RETRIES = 10
MAX_RETRY_WAIT = 300.0  # seconds: no wait between two tries is longer


@dataclass(frozen=True)
class ConnectionRetries:
    """How often the weekly resync's `per_object` shape tries a district again, inside its
    object's task, when a database connection fails (refused, lost mid-sync), and how long it
    waits first: `delay_seconds`, doubled for each further retry (at most MAX_RETRY_WAIT). A
    retry inside the task re-runs that district alone; an Airflow retry of the task would
    re-run every district of the object. Each try is a fresh connection and a fresh
    transaction. (The one-task-per-district-object shape leaves retries to Airflow.)"""

    retries: int = 2
    delay_seconds: float = 5.0

    def wait(self, failed_tries: int) -> float:
        """Seconds to wait after `failed_tries` tries have failed."""
        return min(self.delay_seconds * 2 ** (failed_tries - 1), MAX_RETRY_WAIT)


def parse_connection_retries(raw, path: Path) -> ConnectionRetries:
    """`connection_retries: 2`, or `connection_retries: {retries: 2, delay_seconds: 5}` (both
    keys optional); absent: 2 retries, 5 s then 10 s."""
    where = f"{path}: 'connection_retries'"
    if raw is None:
        return ConnectionRetries()
    if not isinstance(raw, dict):
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_RETRIES:
            raise ConfigError(f"{where} must be a whole number from 0 to {MAX_RETRIES} or a mapping like "
                              "{retries: 2, delay_seconds: 5}")
        return ConnectionRetries(retries=raw)
    unknown = sorted(str(k) for k in raw if k not in ("retries", "delay_seconds"))
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(map(repr, unknown))}; use retries, delay_seconds")
    retries = raw.get("retries", ConnectionRetries.retries)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ConfigError(f"{path}: 'connection_retries.retries' must be a whole number from 0 to {MAX_RETRIES}, e.g. 2")
    delay = raw.get("delay_seconds", ConnectionRetries.delay_seconds)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_RETRY_WAIT:
        raise ConfigError(f"{path}: 'connection_retries.delay_seconds' must be a number of seconds from 0 to "
                          f"{MAX_RETRY_WAIT:g}, e.g. 5")
    return ConnectionRetries(retries=retries, delay_seconds=float(delay))


# ----------------------------------------------------------------- attendance refresh
# The district's Attendance Aggregation Refresh runs before AttDayAggregation syncs.
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
