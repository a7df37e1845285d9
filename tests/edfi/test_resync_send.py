"""The Ed-Fi Resync against the local Ed-Fi API over real HTTP: a first send, an unchanged
resync, a name change through a person-ID resync, removed enrollments deleted, a failed
document kept and sent again, and a run through an API that fails a fifth of its requests."""

from __future__ import annotations

import json

import psycopg
import pytest
from campus_sync.edfi.api.server import LocalEdFiApi, Options
from resync_helpers import by_resource, documents, point_connection, seed_edfi, start_fresh_api

PERSON_RESOURCES = {"students", "studentSchoolAssociations", "studentSectionAssociations", "staffs",
                    "staffEducationOrganizationAssignmentAssociations", "staffSectionAssociations"}


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch):
    """A seeded deployment (district 0101 with its Ed-Fi tables) and a fresh local API."""
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    yield {**deployment, "api": api, "info": info}
    api.stop()


def run_all(**params) -> dict:
    from campus_sync.edfi import resync

    return resync.run({"configuration": "demo", "all_schools": True, **params}, user="tester")


def campus_counts(dsn: str, resource: str) -> tuple[int, int]:
    """(documents the extract builds, those not sendable) for the demo request."""
    from campus_sync.edfi import resync

    req = resync.parse_request({"configuration": "demo", "all_schools": True})
    rows = resync.extract(req, resource)
    return len(rows), sum(1 for r in rows if r[5])


def test_first_send_then_unchanged(edfi):
    first = by_resource(run_all())
    assert set(first) == {"schools", "sessions", "courses", "courseOfferings", "sections", "students",
                          "studentSchoolAssociations", "studentSectionAssociations", "staffs",
                          "staffEducationOrganizationAssignmentAssociations", "staffSectionAssociations"}
    for name, r in first.items():
        processed, unsendable = campus_counts(edfi["districts"]["0101"], name)
        assert r["processed"] == processed > 0, (name, r)
        # only people without an Ed-Fi ID are not sent, each counted under its reason
        assert r["errors"] == unsendable, (name, r)
        assert set(r["error_reasons"]) <= {"no_edfi_id"}, (name, r)
        assert r["inserted"] == processed - unsendable, (name, r)
        assert r["updated"] == r["deleted"] == r["unchanged"] == 0, (name, r)
        assert len(documents(edfi["info"], name)) == r["inserted"], name
    assert first["students"]["error_reasons"]["no_edfi_id"] >= 1

    second = by_resource(run_all())
    for name, r in second.items():
        assert r["inserted"] == r["updated"] == r["deleted"] == 0, (name, r)
        assert r["unchanged"] == first[name]["inserted"], (name, r)

    from campus_sync.edfi import resync

    with resync.state_connection() as conn:
        kinds = [b["kind"] for b in resync._tool("history").batches(conn, limit=5)]
    assert kinds[:2] == ["edfi_resync", "edfi_resync"]


def test_name_change_reaches_the_api_through_a_person_id_resync(edfi):
    run_all()
    dsn = edfi["districts"]["0101"]
    with psycopg.connect(dsn) as conn:
        person, edfi_id = conn.execute(
            "SELECT x.personid, x.edfiid FROM campus_edfi.person_edfi_id x JOIN campus.enrollment e USING (personid)"
            " WHERE x.edfiid IS NOT NULL ORDER BY x.personid LIMIT 1").fetchone()
        conn.execute("UPDATE campus.personidentity SET firstname = 'Renamed' WHERE personid = %s", (person,))
    summary = by_resource(run_all(person_ids=str(person), resources=["students"], select_dependencies=False))
    assert summary["students"]["processed"] == 1
    assert summary["students"]["updated"] == 1 and summary["students"]["errors"] == 0
    [doc] = documents(edfi["info"], "students", studentUniqueId=edfi_id)
    assert doc["firstName"] == "Renamed"


def test_removed_enrollments_are_deleted_at_the_api(edfi):
    run_all()
    dsn = edfi["districts"]["0101"]
    with psycopg.connect(dsn) as conn:
        gone = conn.execute(
            """SELECT e.enrollmentid, e.personid, x.edfiid FROM campus.enrollment e
                 JOIN campus.calendar c USING (calendarid) JOIN campus_edfi.person_edfi_id x USING (personid)
                WHERE e.endyear = 2027 AND NOT e.stateexclude AND NOT c.stateexclude AND x.edfiid IS NOT NULL
                ORDER BY e.enrollmentid LIMIT 2""").fetchall()
        for enrollment, person, _ in gone:
            conn.execute("DELETE FROM campus.enrollment WHERE enrollmentid = %s", (enrollment,))
            conn.execute("DELETE FROM campus_edfi.roster WHERE personid = %s", (person,))
    before = {d["studentReference"]["studentUniqueId"] for d in documents(edfi["info"], "studentSchoolAssociations")}
    assert {g[2] for g in gone} <= before
    summary = by_resource(run_all())
    assert summary["studentSchoolAssociations"]["deleted"] == 2
    assert summary["students"]["deleted"] == 2  # no enrollment left in the year: the student goes too
    assert summary["studentSchoolAssociations"]["errors"] == summary["studentSchoolAssociations"]["error_reasons"].get("no_edfi_id", 0)
    after = {d["studentReference"]["studentUniqueId"] for d in documents(edfi["info"], "studentSchoolAssociations")}
    assert not {g[2] for g in gone} & after
    assert before - after == {g[2] for g in gone}


def test_failed_document_is_not_logged_and_goes_again(edfi):
    from campus_sync.edfi import resync

    dsn = edfi["districts"]["0101"]
    with psycopg.connect(dsn) as conn:
        person, edfi_id = conn.execute(
            "SELECT x.personid, x.edfiid FROM campus_edfi.person_edfi_id x JOIN campus.enrollment e USING (personid)"
            " WHERE x.edfiid IS NOT NULL ORDER BY x.personid DESC LIMIT 1").fetchone()
        conn.execute("UPDATE campus.personidentity SET lastname = repeat('x', 80) WHERE personid = %s", (person,))
    first = run_all(resources=["studentSchoolAssociations"])  # with its dependencies: schools, students
    students = by_resource(first)["students"]
    assert students["error_reasons"].get("http_400") == 1
    csv_text = resync.failed_documents_csv(first["batch_id"])
    lines = [line for line in csv_text.splitlines() if edfi_id in line]
    # the 400 names the field; the association that refers to the refused student gets a 409 naming it
    assert any(line.startswith("students,post,") and ",400," in line and "lastSurname" in line for line in lines)
    assert any(line.startswith("studentSchoolAssociations,post,") and ",409," in line and "Student" in line
               for line in lines), lines
    with resync.state_connection() as conn:
        assert conn.execute("SELECT count(*) FROM edfi.send_log WHERE natural_key = %s",
                            (f'["{edfi_id}"]',)).fetchone()[0] == 0

    again = by_resource(run_all(resources=["students"], select_dependencies=False))["students"]
    assert again["error_reasons"].get("http_400") == 1  # sent again, not skipped as sent

    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE campus.personidentity SET lastname = 'Fixed' WHERE personid = %s", (person,))
    fixed = by_resource(run_all(resources=["students"], select_dependencies=False))["students"]
    assert fixed["inserted"] == 1 and "http_400" not in fixed["error_reasons"]
    assert documents(edfi["info"], "students", studentUniqueId=edfi_id)[0]["lastSurname"] == "Fixed"


def test_faults_end_with_the_same_data_and_no_extra_errors(deployment, make_db, tmp_path, monkeypatch):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path, name="t_edfi_resync_faults", faults=0.2, fault_seed=7,
                          retry_after=1, fault_delay=0.2)
    try:
        info = point_connection(monkeypatch, api)
        full = run_all()
        assert full["http"].get("retries", 0) > 0, full["http"]  # the faults were met, and overcome
        summary = by_resource(full)
        for name, r in summary.items():
            processed, unsendable = campus_counts(deployment["districts"]["0101"], name)
            assert set(r["error_reasons"]) <= {"no_edfi_id"}, (name, r)
            assert r["errors"] == unsendable and r["inserted"] + r["updated"] == processed - unsendable, (name, r)
        api.stop()
        clean = LocalEdFiApi(Options(port=0, token_limit=0), state_dir=tmp_path / "clean", dsn=api.dsn)  # no faults
        clean.start(timeout=120)
        info = point_connection(monkeypatch, clean)
        for name, r in summary.items():
            assert len(documents(info, name)) == processed_minus_unsendable(deployment, name), name
        # the same data: every student at the API is the document Campus builds for it
        from campus_sync.edfi import resync

        req = resync.parse_request({"configuration": "demo", "all_schools": True})
        expected = {json.loads(r[6])["studentUniqueId"]: json.loads(r[6]) for r in resync.extract(req, "students")
                    if not r[5]}
        held = {d["studentUniqueId"]: {k: v for k, v in d.items() if k not in ("id", "_etag", "_lastModifiedDate")}
                for d in documents(info, "students")}
        assert held == expected
        second = by_resource(run_all())
        assert all(r["inserted"] == r["updated"] == r["deleted"] == 0 for r in second.values()), second
        clean.stop()
    finally:
        api.stop()


def processed_minus_unsendable(deployment, name: str) -> int:
    processed, unsendable = campus_counts(deployment["districts"]["0101"], name)
    return processed - unsendable


def test_cli_resync_prints_per_resource_results(edfi, capsys, tmp_path):
    import json

    from campus_sync.cli import main

    assert main(["edfi", "resync", "--configuration", "demo", "--all-schools", "--resources", "sections",
                 "--plan"]) == 0
    assert capsys.readouterr().out.split() == ["planned", "resources,", "in", "order:", "schools", "courses",
                                               "sessions", "courseOfferings", "sections"]
    csv_file = tmp_path / "failed.csv"
    assert main(["edfi", "resync", "--configuration", "demo", "--all-schools", "--json",
                 "--failed-csv", str(csv_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "complete"
    results = by_resource(out)
    assert results["students"]["inserted"] > 0 and results["students"]["error_reasons"]["no_edfi_id"] >= 1
    assert "no_edfi_id" in csv_file.read_text()
    assert main(["edfi", "resync", "--configuration", "demo", "--school", "1000001"]) == 0
    text = capsys.readouterr().out
    assert "studentSchoolAssociations" in text and ": complete" in text
    assert main(["edfi", "resync", "--configuration", "demo", "--all-schools", "--resources", "grades"]) == 1
    assert "unknown resource 'grades'" in capsys.readouterr().err


def test_one_token_serves_a_whole_resync(deployment, make_db, tmp_path, monkeypatch):
    """An ODS/API refuses a client more than a few live tokens (429): every resource's send shares one."""
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path, name="t_edfi_resync_tokens", token_limit=2)
    from campus_sync.edfi import client

    try:
        point_connection(monkeypatch, api)
        summary = run_all()
        client._TOKENS.clear()  # as another process (an Airflow task) would start: the state keeps the token
        with psycopg.connect(deployment["districts"]["0101"]) as conn:  # something to send
            conn.execute("UPDATE campus.school SET name = name || ' Renamed'")
        again = run_all()
    finally:
        api.stop()
    assert summary["status"] == "complete", summary
    assert summary["http"].get("tokens") == 1, summary["http"]
    assert again["status"] == "complete" and by_resource(again)["schools"]["updated"] == 3
    assert "tokens" not in again["http"] and again["http"]["tokens_reused"] >= 1, again["http"]


def test_person_updates_follow_their_authorizing_association(edfi):
    """Ed-Fi authorization order: a student is created in its own step, but an update of a student
    already sent goes after the studentSchoolAssociations step."""
    from campus_sync.edfi import resync

    run_all()
    dsn = edfi["districts"]["0101"]
    with psycopg.connect(dsn) as conn:
        person, edfi_id = conn.execute(
            "SELECT x.personid, x.edfiid FROM campus_edfi.person_edfi_id x JOIN campus.enrollment e USING (personid)"
            " WHERE x.edfiid IS NOT NULL ORDER BY x.personid LIMIT 1").fetchone()
        conn.execute("UPDATE campus.personidentity SET firstname = 'Later' WHERE personid = %s", (person,))
    request = resync.parse_request({"configuration": "demo", "all_schools": True,
                                    "resources": ["studentSchoolAssociations"]})
    assert resync.plan(request) == ["students", "schools", "studentSchoolAssociations"]
    batch = resync.start(request, user="tester")
    try:
        created = resync.send_resource(batch, request, "students")
        assert created["updated"] == 0 and created["inserted"] == 0
        assert documents(edfi["info"], "students", studentUniqueId=edfi_id)[0]["firstName"] != "Later"
        resync.send_resource(batch, request, "schools")
        after = resync.send_resource(batch, request, "studentSchoolAssociations")
        assert after["person_updates"]["students"]["updated"] == 1
        assert documents(edfi["info"], "students", studentUniqueId=edfi_id)[0]["firstName"] == "Later"
    finally:
        summary = resync.finish(batch, {r: ("success", None) for r in resync.plan(request)})
    assert by_resource(summary)["students"]["updated"] == 1
