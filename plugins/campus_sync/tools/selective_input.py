"""The selective sync form's input, parsed without a database (the DAG file builds its form from
it at parse time, and a task re-parses the DAG file, so this module stays light: no psycopg).
"""

from __future__ import annotations

import re
from typing import Any

from campus_sync.hierarchy import Hierarchy
from campus_sync.tools.requests import RequestError

MAX_IDS = 10_000
MAX_ID = 2**63 - 1
SEPARATORS = re.compile(r"[\s,]+")


class SelectiveError(RequestError):
    """The selective request is refused; nothing was written."""


# ------------------------------------------------------------------------------ input
def id_tokens(raw: Any, error: type[Exception], what: str = "IDs") -> list[str]:
    """The tokens of an ID field: text split at line breaks, commas and spaces, or a list (each item
    split the same way). Shared by every form that takes IDs, so they all read them alike."""
    if isinstance(raw, str):
        return [t for t in SEPARATORS.split(raw) if t]
    if not isinstance(raw, (list, tuple)):
        raise error(f"{what} must be text or a list of numbers, got {type(raw).__name__}")
    tokens = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            tokens.append(repr(item))
        else:
            tokens.extend(t for t in SEPARATORS.split(str(item)) if t)
    return tokens


def bad_ids(tokens: list[str]) -> list[str]:
    """The tokens that are not a positive whole number within bigint, each once, in order."""
    return list(dict.fromkeys(t for t in tokens if not re.fullmatch(r"[0-9]+", t) or not 0 < int(t) <= MAX_ID))


def parse_ids(raw: Any) -> tuple[int, ...]:
    """IDs from a string (one per line, or separated by commas or spaces) or a list.

    Returns them sorted, each once. Any token that is not a whole number is refused, naming it.
    """
    if raw is None or raw == "" or raw == []:
        raise SelectiveError("no IDs given: enter at least one ID (one per line, or separated by commas or spaces)")
    tokens = id_tokens(raw, SelectiveError)
    if not tokens:
        raise SelectiveError("no IDs given: enter at least one ID (one per line, or separated by commas or spaces)")
    bad = bad_ids(tokens)
    if bad:
        shown = ", ".join(repr(t) for t in bad)
        noun = "ID" if len(bad) == 1 else "IDs"
        raise SelectiveError(f"{noun} {shown} not a positive whole number: IDs are district personIDs "
                             "or enrollmentIDs, one per line or separated by commas or spaces")
    keys = tuple(sorted({int(t) for t in tokens}))
    if len(keys) > MAX_IDS:
        raise SelectiveError(f"{len(keys)} IDs given; a selective sync takes at most {MAX_IDS} "
                             "(use a partial resync for more)")
    return keys


def selective_objects(graph: Hierarchy) -> tuple[str, ...]:
    """Objects a selective sync can start from: those declaring a `selective_key`."""
    return tuple(n for n in graph.names if graph.spec(n).selective_key)
