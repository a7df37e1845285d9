"""Shared test setup: the project's plugins on sys.path, and the compiled hierarchy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def graph():
    from campus_sync import hierarchy

    return hierarchy.load()
