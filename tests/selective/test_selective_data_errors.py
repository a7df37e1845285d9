"""A selective sync whose object meets a bad district value: that object fails at once (no
retry of the whole request), its descendants are not run, and the report says why for each ID,
naming the side, the district, the object and the column. Real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from selective_helpers import DISTRICT, q

from campus_sync.tools import selective

pytestmark = pytest.mark.db


def test_a_bad_value_fails_the_object_and_names_it_for_each_id(synced, student):
    p, _ = student
    with psycopg.connect(synced["districts"][DISTRICT]) as conn:
        conn.execute("ALTER TABLE campus.personidentity ALTER COLUMN birthdate TYPE text")
        conn.execute("UPDATE campus.personidentity SET birthdate = 'unknown' WHERE personid = %s", (p,))
    summary = selective.run({"object": "PersonIdentity", "ids": str(p), "district": DISTRICT}, user="tester")
    assert summary["status"] == "failed" and summary["failed_objects"] == ["PersonIdentity"]
    assert summary["not_run"] and "Enrollment" in summary["not_run"]
    assert summary["records"] == "0/1"
    reason = summary["failed"][p]
    assert reason.startswith("sync failed: state database: syncing PersonIdentity for district 0101: "
                             'column birthDate: invalid input syntax for type date: "unknown"'), reason
    (message,) = q(synced["state"], "SELECT message FROM sync.batch_result WHERE object = 'PersonIdentity'")[0]
    assert "column birthDate" in message and "not retried" in message
