"""Every refusal reason the engine, the extracts and selective sync emit has plain-language text
(campus_sync.tools.reasons), so the page and the reports never show a bare code."""

from __future__ import annotations

import re
from pathlib import Path

from campus_sync.engine import sync as engine
from campus_sync.tools import reasons
from campus_sync.tools import selective

ROOT = Path(__file__).resolve().parents[2]


def emitted_codes() -> set[str]:
    """The reason codes the extract queries can return (`THEN '<code>'` of their reject_reason
    CASE), the ones the engine decides at the state, and the selective sync's own."""
    codes: set[str] = set()
    for path in sorted((ROOT / "include" / "sql").rglob("*.sql")):
        text = path.read_text(encoding="utf-8")
        if "reject_reason" in text or "AS problem" in text:  # Campus extracts; Ed-Fi documents
            codes |= set(re.findall(r"THEN\s+'([a-z_:A-Za-z]+)'", text))
    codes |= set(engine.STATE_REASONS)
    return codes


def test_the_extracts_emit_the_known_codes():
    found = emitted_codes()
    # the scan finds the refusals of the six TestScore requirements and the exclusions
    assert {"test_no_state_code", "student_not_enrolled", "state_excluded_calendar", "null_key"} <= found


def test_every_emitted_code_has_text():
    missing = sorted(c for c in emitted_codes() if not reasons.describe(c))
    assert missing == [], f"reason codes without plain-language text in campus_sync/tools/reasons.py: {missing}"


def test_http_refusals_name_the_status():
    assert "HTTP 409" in reasons.describe("http_409")


def test_parent_missing_names_the_parent():
    text = reasons.describe(f"{engine.PARENT_MISSING}Calendar")
    assert "Calendar" in text and "not at the state" in text


def test_unknown_code_has_no_made_up_text():
    assert reasons.describe("no_such_reason") == ""


def test_selective_reasons_get_the_text_beside_the_code():
    said = reasons.annotate("refused: state_excluded_enrollment")
    assert said.startswith("refused: state_excluded_enrollment (") and "enrollment" in said[len("refused: "):]
    assert reasons.annotate(selective.NOT_FOUND) == selective.NOT_FOUND  # already plain language
    assert "Calendar" in reasons.annotate("refused: parent_missing:Calendar (calendarID 7 is not at the state)")
