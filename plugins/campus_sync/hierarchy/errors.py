"""Errors that name the problem, the file and the object, with a suggestion where one helps."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest candidate, or '' when nothing is close."""
    pool = sorted(candidates)
    lowered = {c.lower(): c for c in pool}
    if name.lower() in lowered:
        return f" (did you mean {lowered[name.lower()]}?)"
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class HierarchyError(ValueError):
    """The hierarchy is invalid; `problems` lists every problem found, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid hierarchy:\n" + "\n".join(f"  - {p}" for p in self.problems))


class UnknownObjectError(KeyError):
    """A name that is not a declared object (message carries a close-match suggestion)."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        self.message = f"unknown object {name!r}{suggest(name, known)}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class SelectionError(ValueError):
    """A selection that cannot be planned (unknown object, wrong year or state, empty)."""
