"""Plain-language text for every refusal reason code, in one place.

A refused row is counted under a short code (`error_reasons` of a result, `reason` of a selective
ID): the extract's `reject_reason` (include/sql/extract/*.sql), a key the state refuses
(engine.STATE_REASONS), a parent missing at the state (`parent_missing:<Object>`), or an Ed-Fi
document not sent or refused by the API (include/sql/edfi/*.sql `problem`, `http_<status>`). The page,
the CSV/PDF reports and the CLI show the code with this text beside it; the code stays, since it
is what the history stores and what `delete_refused` patterns match. tests/web/test_reasons.py
scans the extracts and the engine so a new code cannot ship without its text.
"""

from __future__ import annotations

import re

PARENT_MISSING = "parent_missing:"  # the engine's prefix (engine.PARENT_MISSING)

TEXT: dict[str, str] = {
    # the district excludes the row from state reporting (stateExclude)
    "state_excluded_school": "the school is excluded from state reporting at the district",
    "state_excluded_calendar": "the calendar is excluded from state reporting at the district",
    "state_excluded_enrollment": "the enrollment is excluded from state reporting at the district",
    "state_excluded_grade_level": "the grade level is excluded from state reporting at the district",
    # the six Test Scores Batch Sync Requirements, in the order they are checked
    "test_no_state_code": "the test has neither a state nor a national code",
    "test_not_published": "the test is not published from the State Edition",
    "score_undated": "a root-level score without a date, on a test without an end year",
    "out_of_scope_year": "neither the score's date nor the test's end year is in the school year",
    "test_district_locked": "the test is locked by the district (editing not available)",
    "student_not_enrolled": "the student has no active enrollment in the sending district that year",
    # keys the state refuses on the staged rows
    "null_key": "the row's key is empty (NULL) at the district",
    "duplicate_key": "the district has this key more than once; none of the copies is loaded",
    # Ed-Fi resync: documents not sent, or refused by the Ed-Fi API
    "no_edfi_id": "the Campus row has no Ed-Fi identifier to send it under",
    "unmapped_descriptor": "a Campus code has no Ed-Fi descriptor mapped to it",
    "incomplete_key": "the document lacks part of its Ed-Fi natural key",
    "no_api_id": "the send log has no Ed-Fi id for the document, so it cannot be deleted",
    "mass_delete_refused": "deleting these documents was refused by the mass-delete guard",
    "connection": "the Ed-Fi API could not be reached",
}


def describe(code: str) -> str:
    """The text for `code`, or "" for a code this package does not emit (shown as the bare code)."""
    if code.startswith(PARENT_MISSING):
        parent = code[len(PARENT_MISSING):] or "parent"
        return f"its {parent} row is not at the state (not synced yet, or refused)"
    if code.startswith("http_") and code[5:].isdigit():
        return f"the Ed-Fi API answered HTTP {code[5:]} (its message is kept with the failed document)"
    if code.startswith("state_excluded_") and code not in TEXT:
        what = code[len("state_excluded_"):].replace("_", " ")
        return f"the {what} is excluded from state reporting at the district"
    return TEXT.get(code, "")


_CODE = re.compile(r"\b(parent_missing:[A-Za-z0-9_]+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b(?!\s*\()")


def annotate(text: str) -> str:
    """`text` with each known code followed by its text in parentheses, unless one follows already
    (selective sync's reasons are sentences such as "refused: state_excluded_enrollment")."""
    def add(m: re.Match) -> str:
        said = describe(m.group(1))
        return f"{m.group(1)} ({said})" if said else m.group(1)

    return _CODE.sub(add, text or "")


def with_text(counts: dict[str, int] | None) -> list[tuple[str, int, str]]:
    """A result's `error_reasons` as (code, count, text), most frequent first."""
    return [(code, int(n), describe(code))
            for code, n in sorted((counts or {}).items(), key=lambda kv: (-int(kv[1]), kv[0]))]
