"""Selective sync on real PostgreSQL (plain Python), its report (CSV, PDF) and Clear History.

Baseline: district 0101 fully synced (`synced`). Each test damages the state for two students,
selectively syncs one of them with unknown and duplicate IDs mixed in, and checks that exactly
that student's rows (and their child objects) are repaired while the other's damage stays.
"""

from __future__ import annotations

import csv
import io
import sys

import psycopg
import pytest
from selective_helpers import DISTRICT, YEAR, all_rows, copy_row_with_key, execute, q, rows_by_key

from campus_sync import cli
from campus_sync.tools import selective

pytestmark = pytest.mark.db


def damage_person(state: str, person: int, extra_form: int) -> None:
    execute(state, "UPDATE state.personidentity SET lastname = 'Damaged' WHERE district_id = %s AND personid = %s",
            (DISTRICT, person))
    # cascades to the enrollment's children (CustomStudent, attendance, Roster...)
    assert execute(state, "DELETE FROM state.enrollment WHERE district_id = %s AND personid = %s AND endyear = %s",
                   (DISTRICT, person, YEAR)) >= 1
    copy_row_with_key(state, "form", "formID", extra_form, "district_id = %s AND personid = %s", (DISTRICT, person))


def test_person_selective_sync_known_unknown_duplicate(synced, graph, student, tmp_path):
    state = synced["state"]
    p, other = student
    plan = selective.plan(graph, "PersonIdentity", "KY")
    before = rows_by_key(state, graph, plan, "personID", p)
    assert before["Enrollment"] and before["CustomStudent"] and before["Form"]
    damage_person(state, p, 990001)
    damage_person(state, other, 990002)
    damaged_other = rows_by_key(state, graph, plan, "personID", other)
    rest_before = all_rows(state, graph, ["School", "Calendar", "Test"])

    summary = selective.run({"object": "PersonIdentity", "ids": f"{p}, 99999\n{p} 88888", "district": DISTRICT},
                            user="tester")

    assert summary["status"] == "complete" and summary["records"] == "1/3"
    assert summary["successful"] == [p]
    assert summary["failed"] == {88888: "not found at district", 99999: "not found at district"}
    # the person and every child object hanging off them are back exactly as a full sync left them
    assert rows_by_key(state, graph, plan, "personID", p) == before
    assert q(state, "SELECT count(*) FROM state.form WHERE formid = 990001") == [(0,)]
    # the other student's damage is untouched: only the requested keys were loaded or deleted
    assert rows_by_key(state, graph, plan, "personID", other) == damaged_other
    assert q(state, "SELECT lastname FROM state.personidentity WHERE personid = %s", (other,)) == [("Damaged",)]
    assert all_rows(state, graph, ["School", "Calendar", "Test"]) == rest_before

    # history: one selective batch, a row per planned object, an outcome per distinct key
    (batch,) = q(state, "SELECT id, kind, status, requested_by, districts, objects, details, completed_at IS NOT NULL,"
                        " check_dependencies FROM sync.batch")
    batch_id, kind, status, user, districts, objects, details, completed, check = batch
    assert (kind, status, user, districts, objects, completed, check) == \
        ("selective", "complete", "tester", [DISTRICT], list(plan), True, False)
    assert details["object"] == "PersonIdentity" and details["keys"] == sorted([p, 88888, 99999])
    assert (details["records"], details["records_ok"], details["records_total"]) == ("1/3", 1, 3)
    results = {o: (s, i, u, d) for o, s, i, u, d in q(
        state, "SELECT object, status, inserted, updated, deleted FROM sync.batch_result WHERE batch_id = %s",
        (batch_id,))}
    assert set(results) == set(plan)
    assert results["PersonIdentity"][1:] == (0, 1, 0)   # the last name, back
    assert results["Form"][3] == 1                       # the extra form, deleted
    assert results["Enrollment"][1] == len(before["Enrollment"]) - sum(
        1 for e in before["Enrollment"] if e["endyear"] != YEAR)
    keys = q(state, "SELECT key_value, ok, reason, object, district_id FROM sync.selective_key"
                    " WHERE batch_id = %s ORDER BY key_value", (batch_id,))
    assert keys == [(88888, False, "not found at district", "PersonIdentity", DISTRICT),
                    (99999, False, "not found at district", "PersonIdentity", DISTRICT),
                    (p, True, "", "PersonIdentity", DISTRICT)]

    # the report, CSV
    out = tmp_path / "r.csv"
    assert cli.main(["report", str(batch_id), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["id"], r["result"], r["reason"]) for r in rows] == [
        ("88888", "failed", "not found at district"), ("99999", "failed", "not found at district"),
        (str(p), "successful", "")]
    assert {(r["district_name"], r["object"], r["requested_by"], r["records"]) for r in rows} == {
        ("Abbott Independent", "PersonIdentity", "tester", "1/3")}

    # the report, PDF: a real PDF whose text a person (and pypdf) can read
    from pypdf import PdfReader

    pdf = tmp_path / "r.pdf"
    assert cli.main(["report", str(batch_id), "-o", str(pdf)]) == 0   # format from the suffix
    assert pdf.read_bytes().startswith(b"%PDF-")
    reader = PdfReader(str(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    for expected in ("Sync Request History", "0101 ABBOTT INDEPENDENT District", "Abbott Independent",
                     "The PersonIdentity sync performed on", "by tester", "IDs failed to process at District",
                     "IDs successful", "Records: 1/3"):
        assert expected in text, expected
    pages = len(reader.pages)
    assert all(f"Page {i} of {pages}" in reader.pages[i - 1].extract_text() for i in range(1, pages + 1))
    text = " ".join(text.split())  # pypdf puts each table cell on its own line
    failed_part = text.split("List of records which failed to sync (identified by PersonID)")[1]
    failed_part, synced_part = failed_part.split("List of records synced (identified by PersonID)")
    assert "88888 not found at district" in failed_part and "99999 not found at district" in failed_part
    assert str(p) not in failed_part
    assert f"{p} synced" in synced_part and "88888" not in synced_part


def test_enrollment_selective_reports_each_refusal(synced, graph):
    state, district = synced["state"], synced["districts"][DISTRICT]
    plan = selective.plan(graph, "Enrollment", "KY")
    accepted = """NOT e.stateexclude AND NOT c.stateexclude AND e.personid <> 99000001 AND EXISTS
                  (SELECT 1 FROM campus.customstudent s WHERE s.enrollmentid = e.enrollmentid)"""
    pick = lambda cond: [r[0] for r in q(district, f"""
        SELECT e.enrollmentid FROM campus.enrollment e JOIN campus.calendar c ON c.calendarid = e.calendarid
         WHERE e.endyear = %s AND {cond} ORDER BY e.enrollmentid LIMIT 2""", (YEAR,))]
    ok, now_excluded = pick(accepted)
    summer, orphan = pick("c.stateexclude")[0], pick("e.personid = 99000001")[0]
    (previous,) = q(district, "SELECT min(enrollmentid) FROM campus.enrollment WHERE endyear = %s", (YEAR - 1,))[0]
    before = rows_by_key(state, graph, plan, "enrollmentID", ok)
    execute(state, "UPDATE state.customstudent SET value = 'Damaged' WHERE enrollmentid = %s", (ok,))
    execute(state, "UPDATE state.enrollment SET grade = 'XX' WHERE enrollmentid = %s", (ok,))
    # at the state since the full sync, now excluded by the district: the selective sync removes it
    assert q(state, "SELECT count(*) FROM state.enrollment WHERE enrollmentid = %s", (now_excluded,)) == [(1,)]
    execute(district, "UPDATE campus.enrollment SET stateexclude = true WHERE enrollmentid = %s", (now_excluded,))

    summary = selective.run({"object": "Enrollment", "ids": [ok, str(now_excluded), summer, orphan, previous, ok],
                             "district": DISTRICT}, user="tester")

    assert summary["records"] == "1/5" and summary["successful"] == [ok]
    assert summary["failed"] == {
        now_excluded: "refused: state_excluded_enrollment",
        summer: "refused: state_excluded_calendar",
        orphan: "refused: parent_missing:PersonIdentity (personID 99000001 is not at the state)",
        previous: "not found at district for the 2026-27 school year (it is in 2025-26)",
    }
    assert rows_by_key(state, graph, plan, "enrollmentID", ok) == before
    assert q(state, "SELECT count(*) FROM state.enrollment WHERE enrollmentid = ANY(%s)",
             ([now_excluded, summer, orphan],)) == [(0,)]
    assert q(state, "SELECT count(*) FROM state.customstudent WHERE enrollmentid = %s", (now_excluded,)) == [(0,)]


def test_selective_object_failure_is_recorded(synced, graph, student):
    """A child object that cannot load fails alone: its descendants are not run, the rest is."""
    state = synced["state"]
    p, _ = student
    with psycopg.connect(synced["districts"][DISTRICT]) as conn:
        conn.execute("ALTER TABLE campus.plan RENAME COLUMN personid TO person_id")
    summary = selective.run({"object": "PersonIdentity", "ids": str(p), "district": DISTRICT}, user="tester")
    assert summary["status"] == "failed" and summary["failed_objects"] == ["Plan"]
    assert summary["not_run"] == ["PlanProgressReport"]
    assert summary["records"] == "1/1"  # the person itself synced
    statuses = dict(q(state, "SELECT object, status FROM sync.batch_result"))
    assert statuses["Plan"] == "failed" and statuses["PlanProgressReport"] == "not_run"
    assert statuses["Form"] in ("green", "yellow", "red")
    assert q(state, "SELECT status FROM sync.batch") == [("failed",)]


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_history_clear(synced, student, monkeypatch, capsys):
    state = synced["state"]
    p, other = student
    selective.run({"object": "PersonIdentity", "ids": str(p), "district": DISTRICT}, user="a")
    selective.run({"object": "PersonIdentity", "ids": f"{other} 5", "district": DISTRICT}, user="b")
    execute(state, "INSERT INTO sync.batch (kind, requested_by, status) VALUES ('full', 'c', 'running')")
    counts = lambda: q(state, "SELECT (SELECT count(*) FROM sync.batch), (SELECT count(*) FROM sync.batch_result),"
                              " (SELECT count(*) FROM sync.selective_key)")[0]
    data = lambda: q(state, "SELECT (SELECT count(*) FROM state.personidentity), (SELECT count(*) FROM state.enrollment)")
    n_results = counts()[1]
    assert counts() == (3, n_results, 3) and n_results > 10
    synced_data = data()

    # no terminal, no --yes: refused, nothing deleted
    assert cli.main(["history", "clear"]) == 1
    assert "refusing without --yes" in capsys.readouterr().err
    # asked, answered no
    monkeypatch.setattr(sys, "stdin", FakeTty("n\n"))
    assert cli.main(["history", "clear"]) == 1
    assert "Delete 2 finished requests" in capsys.readouterr().out
    # --before a date older than every request: nothing to clear
    assert cli.main(["history", "clear", "--before", "2000-01-01", "--yes"]) == 0
    assert "no finished requests made before 2000-01-01" in capsys.readouterr().out
    assert cli.main(["history", "clear", "--before", "yesterday", "--yes"]) == 1
    assert counts() == (3, n_results, 3)

    # asked, answered yes: the finished requests go with their rows; the running one and the data stay
    monkeypatch.setattr(sys, "stdin", FakeTty("y\n"))
    assert cli.main(["history", "clear"]) == 0
    assert f"deleted 2 requests ({n_results} object results, 3 selective ID results)" in capsys.readouterr().out
    assert counts() == (1, 0, 0)
    assert q(state, "SELECT status FROM sync.batch") == [("running",)]
    assert data() == synced_data

    # the plain listing still works
    assert cli.main(["history", "--limit", "5"]) == 0
    assert "running" in capsys.readouterr().out
    assert cli.main(["history", "clear", "--yes"]) == 0
    assert "no finished requests to clear" in capsys.readouterr().out


def test_report_refuses_other_batches(synced, capsys):
    execute(synced["state"], "INSERT INTO sync.batch (kind, requested_by) VALUES ('full', 'c')")
    (batch_id,) = q(synced["state"], "SELECT id FROM sync.batch")[0]
    assert cli.main(["report", str(batch_id)]) == 1
    assert "not a selective sync" in capsys.readouterr().err
    assert cli.main(["report", "424242"]) == 1
    assert "no request with id 424242" in capsys.readouterr().err
