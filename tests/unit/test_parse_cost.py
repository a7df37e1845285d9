"""Every Airflow task re-parses its DAG file in a fresh process, so parsing must stay cheap:
no database driver or report library at import, and the hierarchy YAML read from a cache that
follows every edit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("psycopg", "pgserver", "pandas", "reportlab", "campus_sync.engine.sync", "campus_sync.db")

PROBE = """
import importlib.util, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
loaded = {}
for path in sorted(Path(sys.argv[2]).glob("*.py")):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    loaded[path.name] = sorted(m for m in sys.modules if m.split(".")[0] in {h.split(".")[0] for h in HEAVY}
                               and any(m == h or m.startswith(h + ".") for h in HEAVY))
print(json.dumps(loaded))
"""


def test_importing_every_dag_file_imports_nothing_heavy():
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "plugins"), str(ROOT / "dags")],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(loaded) == {p.name for p in (ROOT / "dags").glob("*.py")}
    assert loaded == {name: [] for name in loaded}, loaded


@pytest.fixture
def include(tmp_path, monkeypatch):
    """A copy of include/ and an empty campus-sync home, as a deployment would have them."""
    inc = tmp_path / "include"
    shutil.copytree(ROOT / "include", inc)
    monkeypatch.setenv("CAMPUS_SYNC_INCLUDE", str(inc))
    monkeypatch.setenv("CAMPUS_SYNC_HOME", str(tmp_path / "home"))
    return inc


def _read(path: Path):
    from campus_sync.hierarchy import cache, loader

    calls = []

    def reader(p):
        calls.append(p)
        return loader.read_specs(p)

    specs, problems = cache.read_specs(path, reader)
    return specs, problems, bool(calls)


def test_hierarchy_cache_hits_and_follows_every_edit(include, tmp_path):
    from campus_sync.hierarchy import cache, compile_path, loader

    hdir = include / "hierarchy"
    specs, problems, parsed = _read(hdir)
    assert parsed and not problems
    assert specs == loader.read_specs(hdir)[0]
    files = list((tmp_path / "home" / "cache").glob("hierarchy-*.json"))
    assert len(files) == 1

    again, _, parsed = _read(hdir)  # unchanged: answered from the cache, equal in every field
    assert not parsed and again == specs

    # an edit (same size, same mtime: the key is the content) is a miss with the new value
    core = hdir / "core.yaml"
    text = core.read_text(encoding="utf-8")
    stat = core.stat()
    edited = text.replace("description: A student's enrollment", "description: A student's Enrollment", 1)
    assert edited != text and len(edited) == len(text)
    core.write_text(edited, encoding="utf-8")
    os.utime(core, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed, _, parsed = _read(hdir)
    assert parsed and {s.name: s.description for s in changed}["Enrollment"].startswith("A student's Enrollment")
    assert len(list((tmp_path / "home" / "cache").glob("hierarchy-*.json"))) == 1  # the stale key is gone

    # a corrupt cache file is a miss, never an error; a new YAML file is a miss too
    (path,) = (tmp_path / "home" / "cache").glob("hierarchy-*.json")
    path.write_text("{not json", encoding="utf-8")
    assert _read(hdir)[2]
    (hdir / "zz_extra.yaml").write_text("objects: []\n", encoding="utf-8")
    assert _read(hdir)[2]

    # the compiled graph from the cache is the one compile_path builds from the YAML
    cached = compile_path(hdir, include / "sql", cached=True)
    direct = compile_path(hdir, include / "sql")
    assert cached.names == direct.names
    assert all(cached.spec(n) == direct.spec(n) for n in direct.names)

    # a missing SQL file is still reported although the YAML comes from the cache
    (include / "sql" / "extract" / "roster.sql").unlink()
    with pytest.raises(Exception, match="roster.sql"):
        compile_path(hdir, include / "sql", cached=True)
    assert cache.cache_dir() == tmp_path / "home" / "cache"


def test_hierarchy_cache_unwritable_home_still_loads(include, tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("CAMPUS_SYNC_HOME", str(blocker))  # cache/ cannot be created under a file
    specs, problems, parsed = _read(include / "hierarchy")
    assert parsed and specs and not problems
