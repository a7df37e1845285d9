"""The Ed-Fi Resync's request: configurations, the form's choices, validation and the plan.

Light on purpose (no psycopg, no httpx, no database): a DAG file builds its form from it at parse
time. The deployment configuration (include/config/campus_sync.yaml) declares the Ed-Fi
configurations:

    edfi:
      configurations:
        - name: demo                   # what the user picks
          district: "0101"             # the district whose Campus data is sent
          school_year: current         # or an end year (2027 = 2026-27)
          conn_id: edfi_demo           # Airflow connection: host = base URL, login = key,
                                       # password = secret, extra = {route_style, api_version, tenant}
          state: KY                    # run_cleanup is Tennessee's (TN) alone
          resources: [schools, sessions, ...]   # the resource preferences: the resources turned on
          concurrency: 8               # requests in flight (optional)
          schools: [{id: 1000001, name: Abbott Elementary School}]   # optional: the form's names
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campus_sync.tools.selective_input import bad_ids, id_tokens

MAX_IDS = 10_000
SEPARATORS = re.compile(r"[\s,]+")
ROUTE_STYLES = ("shared", "year", "context-year", "tenant-year")
PARAMS = ("configuration", "schools", "all_schools", "person_ids", "course_ids", "section_ids", "resources",
          "select_dependencies", "run_cleanup", "confirm_cleanup", "confirm_deletes")
# The resources the extract queries (include/sql/edfi/<resource>.sql) can build.
CLEANUP_STATE = "TN"
ALL_SCHOOLS_WARNING = ("Resyncs every school of the district. Users are highly encouraged NOT to select All "
                       "Schools: it sends a large amount of data and can cause severe performance issues; "
                       "run it off-peak.")


class EdfiRequestError(ValueError):
    """The Ed-Fi Resync request is refused; the message names the bad value. Nothing is written."""


class EdfiConfigError(ValueError):
    """The `edfi` section of the deployment configuration is invalid; the message names the field."""


@dataclass(frozen=True)
class EdfiConfiguration:
    name: str
    district: str
    school_year: str | int  # "current" or an end year
    conn_id: str
    state: str
    resources: tuple[str, ...]
    concurrency: int = 8
    schools: tuple[tuple[int, str], ...] = ()
    max_delete_share: float = 0.5
    delete_guard_min_rows: int = 10

    def end_year(self) -> int:
        if isinstance(self.school_year, int):
            return self.school_year
        from campus_sync import config

        return config.load().end_year("current")


@dataclass(frozen=True)
class EdfiRequest:
    configuration: str
    district_id: str
    school_year: int
    schools: tuple[int, ...] | None  # None: all schools
    person_ids: tuple[str, ...] = ()
    course_ids: tuple[str, ...] = ()
    section_ids: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # send order, dependencies included when select_dependencies
    select_dependencies: bool = True
    run_cleanup: bool = False  # Run Clean-up Logic (Tennessee): a dry run unless confirm_cleanup
    confirm_cleanup: bool = False  # the clean-up deletes what it finds (still under the mass-delete guard)
    confirm_deletes: bool = False
    chosen: tuple[str, ...] = field(default=(), compare=False)  # the resources the user picked

    def to_dict(self) -> dict:
        return {"configuration": self.configuration, "district_id": self.district_id, "school_year": self.school_year,
                "schools": list(self.schools) if self.schools is not None else None,
                "person_ids": list(self.person_ids), "course_ids": list(self.course_ids),
                "section_ids": list(self.section_ids), "resources": list(self.resources),
                "select_dependencies": self.select_dependencies, "run_cleanup": self.run_cleanup,
                "confirm_cleanup": self.confirm_cleanup, "confirm_deletes": self.confirm_deletes,
                "chosen": list(self.chosen)}

    @classmethod
    def from_dict(cls, d: dict) -> EdfiRequest:
        return cls(configuration=d["configuration"], district_id=d["district_id"], school_year=int(d["school_year"]),
                   schools=tuple(d["schools"]) if d.get("schools") is not None else None,
                   person_ids=tuple(d.get("person_ids") or ()), course_ids=tuple(d.get("course_ids") or ()),
                   section_ids=tuple(d.get("section_ids") or ()), resources=tuple(d["resources"]),
                   select_dependencies=bool(d.get("select_dependencies", True)),
                   run_cleanup=bool(d.get("run_cleanup", False)), confirm_deletes=bool(d.get("confirm_deletes", False)),
                   chosen=tuple(d.get("chosen") or ()), confirm_cleanup=bool(d.get("confirm_cleanup", False)))


# ------------------------------------------------------------------ configurations
def supported_resources() -> tuple[str, ...]:
    """Resources with an extract query (include/sql/edfi/<resource>.sql)."""
    from campus_sync import paths

    return tuple(sorted(p.stem for p in (paths.sql_dir() / "edfi").glob("*.sql") if p.stem != "district_tables"))


@functools.lru_cache(maxsize=4)
def _parse(path: str, mtime: float) -> dict[str, EdfiConfiguration]:
    from campus_sync import config
    from campus_sync.hierarchy.loader import safe_load_plain

    cfg = config.load()
    doc = safe_load_plain(Path(path).read_text(encoding="utf-8"), Path(path).name) or {}
    raw = doc.get("edfi")
    if raw is None:
        return {}
    where = f"{path}: edfi"
    if not isinstance(raw, dict) or set(raw) - {"configurations"}:
        raise EdfiConfigError(f"{where} must be a mapping with one key, configurations")
    items = raw.get("configurations") or []
    if not isinstance(items, list):
        raise EdfiConfigError(f"{where}.configurations must be a list")
    known = set(supported_resources())
    out: dict[str, EdfiConfiguration] = {}
    fields = {"name", "district", "school_year", "conn_id", "state", "resources", "concurrency", "schools"}
    for i, c in enumerate(items):
        w = f"{where}.configurations[{i}]"
        if not isinstance(c, dict):
            raise EdfiConfigError(f"{w} must be a mapping")
        extra = sorted(str(k) for k in c if k not in fields)
        if extra:
            raise EdfiConfigError(f"{w}: unknown field {', '.join(map(repr, extra))}")
        name = c.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,60}", name):
            raise EdfiConfigError(f"{w}: name {name!r} must be letters, digits, _ or -")
        if name in out:
            raise EdfiConfigError(f"{w}: configuration {name!r} is listed twice")
        district = c.get("district")
        if not isinstance(district, str):
            raise EdfiConfigError(f"{w}: district {district!r} must be a quoted district id, e.g. \"0101\"")
        try:
            cfg.district(district)
        except ValueError as exc:
            raise EdfiConfigError(f"{w}: {exc}") from None
        year = c.get("school_year", "current")
        if year != "current" and not (isinstance(year, int) and 2000 <= year <= 2100):
            raise EdfiConfigError(f"{w}: school_year must be 'current' or an end year like 2027")
        conn_id = c.get("conn_id")
        if not isinstance(conn_id, str) or not config.CONN_ID_RE.match(conn_id):
            raise EdfiConfigError(f"{w}: conn_id {conn_id!r} must be a connection id (letters, digits, _)")
        state = str(c.get("state") or cfg.state).upper()
        if not re.fullmatch(r"[A-Z]{2,3}", state):
            raise EdfiConfigError(f"{w}: state {state!r} must be a state code like KY")
        resources = c.get("resources")
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
            raise EdfiConfigError(f"{w}: resources must be a non-empty list of Ed-Fi resource names")
        unknown = sorted(set(resources) - known)
        if unknown:
            raise EdfiConfigError(f"{w}: unknown resource {', '.join(map(repr, unknown))}; "
                                  f"resources with an extract: {', '.join(sorted(known))}")
        conc = c.get("concurrency", 8)
        if isinstance(conc, bool) or not isinstance(conc, int) or not 1 <= conc <= 64:
            raise EdfiConfigError(f"{w}: concurrency must be a whole number from 1 to 64")
        schools = []
        for s in c.get("schools") or []:
            if not isinstance(s, dict) or not isinstance(s.get("id"), int):
                raise EdfiConfigError(f"{w}: schools must be a list of {{id: <number>, name: <text>}}")
            schools.append((int(s["id"]), str(s.get("name", s["id"]))))
        out[name] = EdfiConfiguration(name=name, district=district, school_year=year, conn_id=conn_id, state=state,
                                      resources=tuple(dict.fromkeys(resources)), concurrency=conc,
                                      schools=tuple(sorted(schools)), max_delete_share=cfg.max_delete_share,
                                      delete_guard_min_rows=cfg.delete_guard_min_rows)
    return out


def configurations() -> dict[str, EdfiConfiguration]:
    """The Ed-Fi configurations of the deployment configuration, by name (re-read when it changes)."""
    from campus_sync import config

    path = config.config_path()
    config.load()  # the rest of the file must be valid too
    return _parse(str(path), path.stat().st_mtime)


def configuration(name: str) -> EdfiConfiguration:
    confs = configurations()
    if name not in confs:
        raise EdfiRequestError(f"unknown Ed-Fi configuration {name!r}; configured: {', '.join(sorted(confs)) or '(none)'}")
    return confs[name]


# ------------------------------------------------------------------ the form
def school_cache_path(district_id: str) -> Path:
    """Where the district's school names are kept for forms ($CAMPUS_SYNC_HOME, as db.home())."""
    import os

    from campus_sync import paths

    home = Path(os.environ.get("CAMPUS_SYNC_HOME", paths.PROJECT_ROOT / ".campus_sync"))
    return home / "edfi" / f"schools_{district_id}.json"


def write_school_cache(district_id: str, schools: list[tuple[int, str]]) -> None:
    """Keep the district's schools (id, name) for forms built without a database."""
    path = school_cache_path(district_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted([int(i), str(n)] for i, n in schools)))
    tmp.replace(path)


def form_choices(configuration_name: str) -> dict:
    """Schools (id, name) and the enabled resources of one configuration, without a database: the
    schools come from the configuration's `schools`, else from the cache the last resync or demo
    seeding wrote (empty when there is none yet)."""
    conf = configuration(configuration_name)
    schools = list(conf.schools)
    if not schools:
        try:
            schools = [(int(i), str(n)) for i, n in json.loads(school_cache_path(conf.district).read_text())]
        except (OSError, ValueError):
            schools = []
    return {"configuration": conf.name, "district": conf.district, "school_year": conf.end_year(),
            "state": conf.state, "schools": schools, "resources": list(plan_order(conf.resources)),
            "run_cleanup_allowed": conf.state == CLEANUP_STATE, "all_schools_warning": ALL_SCHOOLS_WARNING}


# ------------------------------------------------------------------ validation
def parse_ids(raw: Any, what: str) -> tuple[str, ...]:
    """IDs from text (separated by line breaks, commas or spaces) or a list, as the selective sync
    parses them: each a positive whole number; sorted, each once. Empty is allowed (no filter)."""
    if raw is None or raw == "" or raw == []:
        return ()
    tokens = id_tokens(raw, EdfiRequestError, what)
    bad = bad_ids(tokens)
    if bad:
        shown = ", ".join(repr(t) for t in bad)
        raise EdfiRequestError(f"{what}: {shown} not a positive whole number (IDs are separated by line breaks, "
                               "commas or spaces)")
    keys = sorted({int(t) for t in tokens})
    if len(keys) > MAX_IDS:
        raise EdfiRequestError(f"{what}: {len(keys)} IDs given; at most {MAX_IDS}")
    return tuple(str(k) for k in keys)


def _bool(params: dict, name: str, default: bool) -> bool:
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise EdfiRequestError(f"{name} must be true or false, got {value!r}")
    return value


def parse_request(params: dict) -> EdfiRequest:
    """Validate the form's values (DAG params, CLI flags) into a request; EdfiRequestError names
    the first bad value. Needs no database."""
    unknown = sorted(str(k) for k in params if k not in PARAMS)
    if unknown:
        raise EdfiRequestError(f"unknown parameter {', '.join(map(repr, unknown))}; known: {', '.join(PARAMS)}")
    name = params.get("configuration")
    if not name:
        raise EdfiRequestError("configuration: choose an Ed-Fi configuration")
    conf = configuration(str(name))
    all_schools = _bool(params, "all_schools", False)
    raw_schools = params.get("schools") or []
    if isinstance(raw_schools, (str, int)):
        raw_schools = [raw_schools]
    schools: list[int] = []
    for s in raw_schools:
        if isinstance(s, bool) or not (isinstance(s, int) or (isinstance(s, str) and s.strip().isdigit())):
            raise EdfiRequestError(f"schools: {s!r} is not a school id")
        schools.append(int(s))
    if not schools and not all_schools:
        raise EdfiRequestError("schools: choose at least one school, or All Schools")
    run_cleanup = _bool(params, "run_cleanup", False)
    if run_cleanup and conf.state != CLEANUP_STATE:
        raise EdfiRequestError(f"run_cleanup is for Tennessee only; configuration {conf.name!r} is for {conf.state}")
    confirm_cleanup = _bool(params, "confirm_cleanup", False)
    if confirm_cleanup and not run_cleanup:
        raise EdfiRequestError("confirm_cleanup needs run_cleanup: it lets the clean-up delete what it finds")
    raw_resources = params.get("resources")
    if raw_resources is None or raw_resources == [] or raw_resources == "":
        chosen = list(conf.resources)
    else:
        if isinstance(raw_resources, str):
            raw_resources = [r for r in SEPARATORS.split(raw_resources) if r]
        chosen = [str(r) for r in raw_resources]
        bad = [r for r in chosen if r not in conf.resources]
        if bad:
            raise EdfiRequestError(f"resources: unknown resource {', '.join(map(repr, dict.fromkeys(bad)))} for "
                                   f"configuration {conf.name!r}; enabled: {', '.join(plan_order(conf.resources))}")
    select = _bool(params, "select_dependencies", True)
    resources = set(chosen)
    if select:
        resources |= dependencies_of(chosen, conf.resources)
    person_ids = parse_ids(params.get("person_ids"), "person_ids")
    course_ids = parse_ids(params.get("course_ids"), "course_ids")
    section_ids = parse_ids(params.get("section_ids"), "section_ids")
    if run_cleanup and (course_ids or section_ids):
        raise EdfiRequestError("run_cleanup cannot be narrowed by course_ids or section_ids: the API's documents "
                               "cannot be tied to Campus course or section IDs; narrow it by schools and person_ids")
    return EdfiRequest(
        configuration=conf.name, district_id=conf.district, school_year=conf.end_year(),
        schools=None if all_schools else tuple(sorted(set(schools))),
        person_ids=person_ids, course_ids=course_ids, section_ids=section_ids,
        resources=plan_order(resources), select_dependencies=select, run_cleanup=run_cleanup,
        confirm_deletes=_bool(params, "confirm_deletes", False), chosen=plan_order(chosen),
        confirm_cleanup=confirm_cleanup)


# ------------------------------------------------------------------ order
@functools.lru_cache(maxsize=1)
def _levels() -> dict[str, int]:
    """Each resource's order in the model's dependency list (its Create entry)."""
    from campus_sync.edfi import model

    out: dict[str, int] = {}
    for d in model.load().dependencies():
        name = d["resource"].rsplit("/", 1)[1]
        if "Create" in d["operations"]:
            out[name] = d["order"]
    return out


def plan_order(resources) -> tuple[str, ...]:
    """Resources in the model's dependency order (ties by name)."""
    levels = _levels()
    return tuple(sorted(set(resources), key=lambda r: (levels.get(r, 99), r)))


def dependencies_of(chosen, enabled) -> set[str]:
    """Every enabled resource the chosen ones refer to, transitively (Select Dependencies)."""
    from campus_sync.edfi import model

    m = model.load()
    enabled = set(enabled)
    out: set[str] = set()
    todo = list(chosen)
    while todo:
        r = todo.pop()
        for dep in m.references_of(m.resource(r)):
            if dep in enabled and dep not in out and dep not in chosen:
                out.add(dep)
                todo.append(dep)
    return out


def plan(request: EdfiRequest) -> list[str]:
    """The resources of a request in dependency order (each a DAG task). A person resource's
    updates wait for its authorizing associations: the sender does that inside the order."""
    return list(plan_order(request.resources))
