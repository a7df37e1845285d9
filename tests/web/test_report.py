"""The selective sync report: times carry their zone, refusal codes their plain-language text."""

from __future__ import annotations

import csv
import datetime as dt
import io

from campus_sync.tools import report


def _data() -> dict:
    at = dt.datetime(2026, 10, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    return {"batch_id": 7, "district_id": "0101", "district_name": "Abbott Independent", "object": "Enrollment",
            "key_column": "enrollmentID", "requested_by": "tester", "requested_at": at,
            "completed_at": at + dt.timedelta(minutes=1), "status": "complete", "records": "1/3",
            "failed": [(11, "refused: state_excluded_enrollment"), (12, "not found at district")],
            "successful": [(10, "")], "objects": []}


def test_csv_times_carry_their_offset_and_reasons_their_text():
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(report.to_csv(_data())))}
    assert rows["10"]["requested_at"] == "2026-10-01T08:30:00-05:00"
    assert rows["11"]["reason"] == "refused: state_excluded_enrollment"
    assert "excluded from state reporting" in rows["11"]["reason_text"]
    assert rows["12"]["reason_text"] == "" and rows["10"]["reason_text"] == ""


def test_pdf_times_name_their_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert report.format_ts(_data()["requested_at"]) == "10/01/2026 01:30:00 PM UTC"
        monkeypatch.setenv("TZ", "Asia/Kolkata")
        time.tzset()
        assert report.format_ts(_data()["requested_at"]) == "10/01/2026 07:00:00 PM +05:30"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    from pypdf import PdfReader

    text = " ".join("\n".join(p.extract_text() for p in PdfReader(io.BytesIO(report.to_pdf(_data()))).pages).split())
    assert "excluded from state reporting" in text
