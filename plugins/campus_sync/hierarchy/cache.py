"""A disk cache of the parsed hierarchy YAML, so a task's DAG-file parse stays cheap.

Every Airflow task re-parses its DAG file in a fresh process; reading the hierarchy YAML with
PyYAML costs ~0.5 s of that. The parsed entries (the `read_specs` result: specs and problems)
are stored as JSON under `$CAMPUS_SYNC_HOME/cache/`, keyed by a SHA-256 of every YAML file's
name and bytes and of the loader's own source, so any edit to the YAML or to the code that
reads it is a different key (no mtime races). The compiled graph is still built and checked
(SQL files present, parents, cycles) on every load; only the YAML parse is skipped.

Concurrent writers are safe: each writes a temporary file and renames it over the target
(atomic on POSIX), and the content for one key is always the same. Anything unreadable
(corrupt, old format, permission denied) is a miss: the YAML is parsed again. JSON, not
pickle, so a cache file can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from campus_sync import paths
from campus_sync.hierarchy.model import ForeignKey, ObjectSpec

FORMAT = 1
_CODE = ("loader.py", "model.py", "errors.py", "cache.py")


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))


def cache_key(path: Path) -> str:
    """Digest of the YAML files' names and bytes and of the code that parses them."""
    h = hashlib.sha256(f"format {FORMAT}\n{path.resolve()}\n".encode())
    here = Path(__file__).parent
    for name in _CODE:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    for file in _yaml_files(path):
        data = file.read_bytes()
        h.update(file.name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def cache_dir() -> Path:
    return paths.home() / "cache"


def _encode(specs: list[ObjectSpec], problems: list[str]) -> str:
    return json.dumps({"format": FORMAT, "specs": [asdict(s) for s in specs], "problems": problems},
                      separators=(",", ":"))


def _decode(text: str) -> tuple[list[ObjectSpec], list[str]]:
    doc = json.loads(text)
    if doc.get("format") != FORMAT:
        raise ValueError("old cache format")
    specs = []
    for d in doc["specs"]:
        d = dict(d)
        d["columns"] = tuple(tuple(c) for c in d["columns"])
        d["foreign_keys"] = tuple(ForeignKey(**fk) for fk in d["foreign_keys"])
        for k, v in d.items():  # every other sequence field is a tuple of strings
            if isinstance(v, list):
                d[k] = tuple(v)
        specs.append(ObjectSpec(**d))
    return specs, list(doc["problems"])


def read_specs(path: Path, reader) -> tuple[list[ObjectSpec], list[str]]:
    """`reader(path)` (the loader's `read_specs`), answered from the cache when the key matches."""
    try:
        key = cache_key(path)
    except OSError:
        return reader(path)  # the loader names a missing folder or file
    target = cache_dir() / f"hierarchy-{key}.json"
    try:
        return _decode(target.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    specs, problems = reader(path)
    _store(target, _encode(specs, problems))
    return specs, problems


def _store(target: Path, text: str) -> None:
    """Write atomically; a read-only or missing home only means no cache."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hierarchy-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in target.parent.glob("hierarchy-*.json"):  # stale keys: YAML or code changed
            if old != target:
                old.unlink(missing_ok=True)
    except OSError:
        pass
