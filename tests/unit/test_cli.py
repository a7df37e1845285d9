"""The `campus-sync` command-line contract (exact JSON shapes, exit codes, messages)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "fixtures" / "bad_hierarchy"


def run(*args: str) -> subprocess.CompletedProcess:
    exe = ROOT / ".venv" / "bin" / "campus-sync"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "campus_sync.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "plugins")})


def test_validate_ok(graph):
    r = run("hierarchy", "validate")
    assert r.returncode == 0, r.stderr
    assert f"{len(graph.names)} objects" in r.stdout


def test_validate_bad_lists_problems():
    r = run("hierarchy", "validate", str(BAD / "unknown_parent.yaml"))
    assert r.returncode == 1
    assert "unknown parent 'Distrct' (did you mean District?)" in r.stderr


def test_show_json_contract(graph):
    r = run("hierarchy", "show", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"objects"}
    assert [o["name"] for o in doc["objects"]] == list(graph.names)
    keys = {"name", "parents", "ancestors", "children", "school_year_scoped", "selective_key", "states"}
    assert all(set(o) == keys for o in doc["objects"])


def test_show_roster():
    r = run("hierarchy", "show", "Roster", "--json")
    (obj,) = json.loads(r.stdout)["objects"]
    assert obj["ancestors"] == ["District", "School", "Calendar", "ScheduleStructure",
                                "StructureGradeLevel", "PersonIdentity", "Enrollment"]
    text = run("hierarchy", "show", "Roster").stdout
    assert "District -> School -> Calendar -> ScheduleStructure -> StructureGradeLevel" in text


def test_show_table(graph):
    r = run("hierarchy", "show")
    assert r.returncode == 0 and f"{len(graph.names)} objects" in r.stdout


def test_plan_json():
    r = run("plan", "--objects", "TestScore", "--check-dependencies", "--json")
    doc = json.loads(r.stdout)
    objs = doc["objects"]
    assert objs.index("Test") < objs.index("TestScore")
    assert objs.index("PersonIdentity") < objs.index("Test")
    assert [n for s in doc["stages"] for n in s] == objs


@pytest.mark.parametrize("args, message", [
    (["plan", "--objects", "TestScor"], "unknown object 'TestScor' (did you mean TestScore?)"),
    (["plan", "--objects", "PersonIdentity", "--school-year", "next"], "not tied to a school year"),
    (["hierarchy", "show", "Nope"], "unknown object 'Nope'"),
])
def test_errors_exit_nonzero(args, message):
    r = run(*args)
    assert r.returncode != 0
    assert message in r.stderr
