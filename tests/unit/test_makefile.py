"""The Makefile as make reads it (`make -n`, `make -p`): every target is phony except the
install stamp, and the demo's server can be stopped and its data removed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="no make")


def _dry_run(target: str) -> str:
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_command_target_is_phony():
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")  # continuation lines joined
    phony = {name for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for name in line.split()}
    targets = {m.group(1) for m in re.finditer(r"^([a-z][a-z0-9-]*):", text, re.M)}
    assert {"demo-stop", "clean-demo", "airflow-stop"} <= targets
    assert targets - phony == set(), targets - phony
    assert phony - targets == set(), phony - targets


def test_demo_stop_and_clean_demo_have_recipes():
    assert "campus-sync demo stop" in _dry_run("demo-stop")
    assert "campus-sync demo clean" in _dry_run("clean-demo")
