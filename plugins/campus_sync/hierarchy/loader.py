"""Read the hierarchy YAML (safe_load only), validate every entry, compile it once per process.

Validation collects every problem before failing, each naming the file and the object, so a
user fixing the YAML sees the whole list at once.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from campus_sync import paths
from campus_sync.hierarchy.errors import HierarchyError, suggest
from campus_sync.hierarchy.graph import Hierarchy
from campus_sync.hierarchy.model import COLUMN_TYPES, SCHOOL_YEARS, YEAR_COLUMN, ObjectSpec

REQUIRED = ("name", "description", "parents", "key", "columns")
OPTIONAL = ("school_year", "selective_key", "states", "not_states", "sql", "delete_refused")
REASON_RE = re.compile(r"^[a-z][a-z0-9_:*]*$")
MAX_YAML_BYTES = 1 << 20  # a hierarchy file is a few KiB; refuse anything absurd before parsing
NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
COLUMN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
STATE_RE = re.compile(r"^[A-Z]{2,3}$")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise HierarchyError([f"{path}: no such file or directory"])
    found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    if not found:
        raise HierarchyError([f"{path}: no .yaml files"])
    return found


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _parse_entry(entry: Any, where: str, problems: list[str]) -> ObjectSpec | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: each object must be a mapping, got {type(entry).__name__}")
        return None
    name = entry.get("name")
    label = f"{where}: object {name!r}" if isinstance(name, str) else where
    before = len(problems)
    for field_name in REQUIRED:
        if field_name not in entry:
            problems.append(f"{label}: missing field {field_name!r}")
    for field_name in sorted(set(entry) - set(REQUIRED) - set(OPTIONAL)):
        hint = suggest(str(field_name), REQUIRED + OPTIONAL)
        problems.append(f"{label}: unknown field {field_name!r}{hint}")
    if len(problems) > before:
        return None
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{label}: name must be CamelCase letters and digits")
        return None
    if not isinstance(entry["description"], str) or not entry["description"].strip():
        problems.append(f"{label}: description must be a non-empty string")
    parents = _str_list(entry["parents"])
    if parents is None:
        problems.append(f"{label}: parents must be a list of object names")
        parents = []
    if len(set(parents)) != len(parents):
        problems.append(f"{label}: parents lists an object twice")
    if name in parents:
        problems.append(f"{label}: lists itself as a parent")
    columns_raw = entry["columns"]
    columns: list[tuple[str, str]] = []
    if not isinstance(columns_raw, dict) or not columns_raw:
        problems.append(f"{label}: columns must be a non-empty mapping of column: type")
    else:
        seen: set[str] = set()
        for col, typ in columns_raw.items():
            if not isinstance(col, str) or not COLUMN_RE.match(col):
                problems.append(f"{label}: bad column name {col!r}")
                continue
            if col.lower() in seen:
                problems.append(f"{label}: column {col!r} declared twice (names ignore case)")
            seen.add(col.lower())
            if typ not in COLUMN_TYPES:
                problems.append(
                    f"{label}: column {col!r} has unknown type {typ!r}"
                    f"{suggest(str(typ), COLUMN_TYPES)}; use one of {', '.join(COLUMN_TYPES)}"
                )
            columns.append((col, str(typ)))
    colnames = [c for c, _ in columns]
    key = _str_list(entry["key"])
    if not key:
        problems.append(f"{label}: key must be a non-empty list of column names")
        key = []
    for k in key:
        if colnames and k not in colnames:
            problems.append(f"{label}: key column {k!r} is not a declared column{suggest(k, colnames)}")
    years = entry.get("school_year") or []
    if _str_list(years) is None:
        problems.append(f"{label}: school_year must be a list of {', '.join(SCHOOL_YEARS)}")
        years = []
    for y in years:
        if y not in SCHOOL_YEARS:
            problems.append(f"{label}: unknown school year {y!r}; use {', '.join(SCHOOL_YEARS)}")
    if years and "current" not in years:
        problems.append(f"{label}: school_year must include 'current' (every object syncs for it)")
    if years and colnames and YEAR_COLUMN not in colnames:
        problems.append(f"{label}: tied to a school year but has no {YEAR_COLUMN!r} column")
    selective = entry.get("selective_key")
    if selective is not None and (not isinstance(selective, str) or selective not in colnames):
        problems.append(f"{label}: selective_key {selective!r} is not a declared column")
    states: list[str] = []
    for field_name in ("states", "not_states"):
        value = entry.get(field_name, [])
        codes = _str_list(value)
        if codes is None or not all(STATE_RE.match(c) for c in codes):
            problems.append(f"{label}: {field_name} must be a list of state codes like KY")
            codes = []
        if field_name == "states":
            states = codes
        else:
            not_states = codes
    delete_refused = entry.get("delete_refused", [])
    if _str_list(delete_refused) is None or not all(REASON_RE.match(r) for r in delete_refused):
        problems.append(f"{label}: delete_refused must be a list of refusal reasons (lower_case, * allowed)")
        delete_refused = []
    sql = entry.get("sql", f"extract/{name.lower()}.sql")
    if not isinstance(sql, str) or Path(sql).is_absolute() or ".." in Path(sql).parts:
        problems.append(f"{label}: sql must be a path relative to include/sql")
        sql = ""
    return ObjectSpec(
        name=name,
        description=str(entry["description"]).strip(),
        parents=tuple(parents),
        key=tuple(key),
        columns=tuple(columns),
        school_years=tuple(y for y in SCHOOL_YEARS if y in years),
        selective_key=selective,
        states=tuple(sorted(states)),
        not_states=tuple(sorted(not_states)),
        sql=sql,
        source=where.split(":")[0],
        delete_refused=tuple(sorted(delete_refused)),
    )


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and duplicate keys.

    Anchors and aliases: a few hundred bytes of nested aliases ("billion laughs") expand to
    gigabytes, and no file the package reads needs them. Duplicate keys: PyYAML keeps the last
    one silently, so a second `districts:` or `parents:` would replace the first unnoticed."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed, line {event.start_mark.line + 1}")
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise yaml.YAMLError(f"anchors (&{anchor}) are not allowed, line {event.start_mark.line + 1}")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<`: SafeLoader merges it
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise yaml.YAMLError(f"duplicate key {key!r} on line {line} (first on line {seen[key]}):"
                                             " a key may appear only once in a mapping")
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader itself refuses it below
                    continue
        return super().construct_mapping(node, deep)


def safe_load_plain(text: str, name: str) -> Any:
    """yaml.safe_load without anchors/aliases or duplicate keys, and with a size bound
    (`name` is for messages). Every YAML file a user edits (configuration, hierarchy) is read
    with it."""
    if len(text) > MAX_YAML_BYTES:
        raise yaml.YAMLError(f"{len(text)} bytes is more than the {MAX_YAML_BYTES} a YAML file may have")
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_specs(path: Path) -> tuple[list[ObjectSpec], list[str]]:
    """Parse every YAML file under `path`; return specs and the problems found so far."""
    specs: list[ObjectSpec] = []
    problems: list[str] = []
    for file in _files(path):
        try:
            doc = safe_load_plain(file.read_text(encoding="utf-8"), file.name)
        except yaml.YAMLError as exc:
            problems.append(f"{file.name}: not valid YAML: {exc}".replace("\n", " "))
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
            problems.append(f"{file.name}: expected a top-level 'objects:' list")
            continue
        for i, entry in enumerate(doc["objects"]):
            spec = _parse_entry(entry, f"{file.name}:objects[{i}]", problems)
            if spec is not None:
                specs.append(spec)
    return specs, problems


def compile_path(path: Path | str, sql_root: Path | str | None = None, *, cached: bool = False) -> Hierarchy:
    """Compile a hierarchy folder (or one file). SQL files are checked when `sql_root` exists.

    By default `sql_root` is the `sql/` folder next to the hierarchy folder. `cached`: take the
    parsed YAML from the disk cache when the files are unchanged (see `hierarchy.cache`).
    """
    path = Path(path)
    if cached:
        from campus_sync.hierarchy import cache

        specs, problems = cache.read_specs(path, read_specs)
    else:
        specs, problems = read_specs(path)
    root = Path(sql_root) if sql_root is not None else (path if path.is_dir() else path.parent).parent / "sql"
    if root.is_dir():
        for spec in specs:
            if spec.sql and not (root / spec.sql).is_file():
                problems.append(f"{spec.source}: object {spec.name!r}: SQL file {spec.sql} is missing under {root}")
    return Hierarchy.build(specs, problems, sql_root=root if root.is_dir() else None)


@functools.lru_cache(maxsize=1)
def load() -> Hierarchy:
    """The project's hierarchy, compiled once per process (DAG files import this)."""
    return compile_path(paths.hierarchy_dir(), paths.sql_dir(), cached=True)
