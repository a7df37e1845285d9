"""Turn a DAG run's form (params) into a validated resync request. Plain Python.

Every check here runs in the first task, before any history row or state row is written, and
raises `RequestError` with a message naming the bad value. (The Param JSON schema refuses what it
can express at trigger time; this covers the rest, e.g. an object not offered for a year.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from campus_sync import config as config_mod
from campus_sync.hierarchy import Hierarchy, SCHOOL_YEARS, UnknownObjectError
from campus_sync.hierarchy.errors import SelectionError

KINDS = ("full", "partial", "state_request", "selective", "verification")
REQUESTERS = ("district", "state")  # the partial resync form's `requested_by`


class RequestError(ValueError):
    """The request is refused; nothing was written."""


@dataclass(frozen=True)
class Request:
    kind: str
    requested_by: str
    districts: tuple[str, ...]
    objects: tuple[str, ...]  # run order
    requested: tuple[str, ...]
    school_year: str
    end_year: int
    check_dependencies: bool
    confirm_deletes: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# Conf keys every DAG of the package takes besides its params: `user` names the requester when
# Airflow knows no triggering user (dag.test, the CLI); Airflow's own user wins otherwise.
RESERVED_CONF = ("user",)


def check_conf_keys(conf: dict | None, known) -> None:
    """Refuse conf keys the DAG does not declare (Airflow merges them into params silently: the
    typo `district` for `districts` once widened a partial resync to every district)."""
    from difflib import get_close_matches

    allowed = sorted(set(known) | set(RESERVED_CONF))
    unknown = sorted(str(k) for k in (conf or {}) if k not in allowed)
    if unknown:
        hints = [f"{k!r}" + (f" (did you mean {m[0]!r}?)" if (m := get_close_matches(k, allowed, 1)) else "")
                 for k in unknown]
        raise RequestError(f"unknown conf key {', '.join(hints)}; this DAG takes: {', '.join(allowed)}")


def parse_districts(cfg: config_mod.Config, raw) -> tuple[str, ...]:
    if raw in (None, "", []):
        return cfg.district_ids
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise RequestError(f"districts must be a list of district ids, got {raw!r}")
    out = []
    for d in raw:
        d = str(d).strip().split(" ", 1)[0]  # accept "0101 Abbott Independent" labels too
        if d not in cfg.district_ids:
            raise RequestError(f"unknown district {d!r}; configured: {', '.join(cfg.district_ids)}")
        if d not in out:
            out.append(d)
    return tuple(sorted(out))


def build(graph: Hierarchy, cfg: config_mod.Config, params: dict, *, kind: str, user: str) -> Request:
    """Validate a run's params into a Request (plan included)."""
    school_year = params.get("school_year") or "current"
    if school_year not in SCHOOL_YEARS:
        raise RequestError(f"unknown school_year {school_year!r}; use one of {', '.join(SCHOOL_YEARS)}")
    requester = params.get("requested_by") or "district"
    if requester not in REQUESTERS:
        raise RequestError(f"unknown requested_by {requester!r}; use one of {', '.join(REQUESTERS)}")
    check = params.get("check_dependencies", True)
    if not isinstance(check, bool):
        raise RequestError(f"check_dependencies must be true or false, got {check!r}")
    confirm = params.get("confirm_deletes", False)
    if not isinstance(confirm, bool):
        raise RequestError(f"confirm_deletes must be true or false, got {confirm!r}")
    districts = parse_districts(cfg, params.get("districts"))
    if kind == "full":
        objects = list(graph.enabled(cfg.state, school_year))
        check = True
    else:
        objects = params.get("objects")
        if isinstance(objects, str):
            objects = [o for o in objects.replace(",", " ").split() if o]
        if not isinstance(objects, list) or not objects:
            raise RequestError("no objects selected: choose at least one object")
    try:
        plan = graph.plan(objects, check, school_year, cfg.state)
    except (SelectionError, UnknownObjectError) as exc:
        raise RequestError(str(exc)) from None
    return Request(kind=kind, requested_by=user, districts=districts, objects=plan.objects,
                   requested=plan.requested, school_year=school_year,
                   end_year=cfg.end_year(school_year), check_dependencies=check, confirm_deletes=confirm)
