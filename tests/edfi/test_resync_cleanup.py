"""Run Clean-up Logic (Tennessee) against the local Ed-Fi API over real HTTP: documents at the API
in the request's scope that Campus does not have, including ones our send log never knew (posted
straight to the API), are reported by a dry run and deleted only when confirmed, children before
their parents; another school's are untouched; a Campus row that is there but not sendable keeps
its document; documents without a school year are left alone where the API keeps every year."""

from __future__ import annotations

import json

import psycopg
import pytest
from cleanup_helpers import bare, ids, ods_only_section, post, schools, tennessee_config
from resync_helpers import by_resource, documents, point_connection, seed_edfi, start_fresh_api

YEAR = 2027


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    tennessee_config(tmp_path, monkeypatch)
    yield {**deployment, "api": api, "info": info, "dsn": deployment["districts"]["0101"]}
    api.stop()


def run(**params) -> dict:
    from campus_sync.edfi import cleanup

    return cleanup.run({"configuration": "demo", **params}, user="tester")


def details(batch_id: int) -> dict:
    from campus_sync.edfi import resync

    with resync.state_connection() as conn:
        return conn.execute("SELECT details FROM sync.batch WHERE id = %s", (batch_id,)).fetchone()[0]


def cleanup_rows(batch_id: int) -> list[dict]:
    from campus_sync.edfi import resync

    return [d for d in resync.failed_documents(batch_id) if d["operation"] == "cleanup"]


def test_dry_run_reports_and_confirmation_deletes_children_first(edfi):
    info = edfi["info"]
    a, b = schools(edfi["dsn"])[:2]
    assert run(all_schools=True)["status"] == "complete"
    campus_sections = ids(info, "sections")
    section_a, assoc_a = ods_only_section(info, a, "ODS-ONLY-A")
    section_b, assoc_b = ods_only_section(info, b, "ODS-ONLY-B")  # another school: out of scope

    dry = run(schools=[a], run_cleanup=True)
    assert dry["status"] == "complete", dry
    results = by_resource(dry)
    for name in ("sections", "studentSectionAssociations"):
        assert results[name]["error_reasons"].get("cleanup_dry_run") == 1, (name, results[name])
        assert results[name]["deleted"] == 0, (name, results[name])
        assert set(results[name]["error_reasons"]) <= {"no_edfi_id", "cleanup_dry_run"}, (name, results[name])
    assert {section_a, section_b} <= ids(info, "sections")  # nothing deleted
    assert {assoc_a, assoc_b} <= ids(info, "studentSectionAssociations")
    report = cleanup_rows(dry["batch_id"])
    assert {(d["resource"], d["reason"]) for d in report} == {("sections", "cleanup_dry_run"),
                                                              ("studentSectionAssociations", "cleanup_dry_run")}
    assert all("ODS-ONLY-A" in d["natural_key"] for d in report)
    from campus_sync.edfi import resync

    assert "ODS-ONLY-A" in resync.failed_documents_csv(dry["batch_id"])  # the error report lists them
    at_a = [d for d in documents(info, "sections") if d["courseOfferingReference"]["schoolId"] == a]
    assert details(dry["batch_id"])["cleanup"]["sections"] == {"read": len(at_a), "absent": 1, "deleted": 0,
                                                                "confirmed": False}

    confirmed = run(schools=[a], run_cleanup=True, confirm_cleanup=True)
    assert confirmed["status"] == "complete", confirmed
    results = by_resource(confirmed)
    for name in ("sections", "studentSectionAssociations"):
        # the association went first: a section with a dependent would be refused (409 dependent-item-exists)
        assert results[name]["deleted"] == 1, (name, results[name])
        assert set(results[name]["error_reasons"]) <= {"no_edfi_id"}, (name, results[name])
    after = ids(info, "sections")
    assert section_a not in after and section_b in after and campus_sections <= after
    assocs = ids(info, "studentSectionAssociations")
    assert assoc_a not in assocs and assoc_b in assocs
    again = by_resource(run(schools=[a], run_cleanup=True, confirm_cleanup=True))
    assert again["sections"]["deleted"] == again["studentSectionAssociations"]["deleted"] == 0
    assert not [d for d in cleanup_rows(confirmed["batch_id"])]  # nothing failed or withheld


def test_cleanup_deletes_what_the_send_log_cannot_and_drops_its_row(edfi):
    """A logged section without the API's id (its answer had no Location) and gone from Campus:
    the send log's delete cannot delete it; the confirmed clean-up finds it at the API, deletes it
    by the id the API gives, and drops its send-log row."""
    from campus_sync.edfi import resync

    info, dsn = edfi["info"], edfi["dsn"]
    a = schools(dsn)[0]
    assert run(all_schools=True)["status"] == "complete"
    with psycopg.connect(dsn) as conn:
        (section_id,) = conn.execute(
            """SELECT s.sectionid FROM campus_edfi.section s JOIN campus_edfi.course co USING (courseid)
                 JOIN campus.calendar c ON c.calendarid = co.calendarid
                WHERE c.schoolid = %s AND c.endyear = %s ORDER BY s.sectionid LIMIT 1""", (a, YEAR)).fetchone()
        conn.execute("DELETE FROM campus_edfi.roster WHERE sectionid = %s", (section_id,))
        conn.execute("DELETE FROM campus_edfi.section WHERE sectionid = %s", (section_id,))
    with resync.state_connection() as conn:
        (api_id,) = conn.execute("SELECT api_id FROM edfi.send_log WHERE configuration = 'demo' AND resource = 'sections'"
                                 " AND source_id = %s", (str(section_id),)).fetchall()[0]
        conn.execute("UPDATE edfi.send_log SET api_id = NULL WHERE configuration = 'demo' AND resource = 'sections'"
                     " AND source_id = %s", (str(section_id),))
        conn.commit()
    assert api_id in ids(info, "sections")
    summary = run(schools=[a], run_cleanup=True, confirm_cleanup=True)
    sections = by_resource(summary)["sections"]
    assert sections["error_reasons"].get("no_api_id") == 1  # the send log's delete could not
    assert sections["deleted"] == 1, sections  # the clean-up did
    assert api_id not in ids(info, "sections")
    with resync.state_connection() as conn:
        left = conn.execute("SELECT count(*) FROM edfi.send_log WHERE configuration = 'demo' AND resource = 'sections'"
                            " AND source_id = %s", (str(section_id),)).fetchone()[0]
    assert left == 0
    again = by_resource(run(schools=[a], run_cleanup=True, confirm_cleanup=True))["sections"]
    assert again["errors"] == again["deleted"] == 0, again


def test_a_campus_row_that_cannot_be_sent_keeps_its_document(edfi):
    """A student whose Ed-Fi ID Campus no longer has: the send log's delete keeps the documents
    of rows still in Campus, and so does the clean-up."""
    info, dsn = edfi["info"], edfi["dsn"]
    a = schools(dsn)[0]
    assert run(all_schools=True)["status"] == "complete"
    with psycopg.connect(dsn) as conn:
        person, edfi_id = conn.execute(
            """SELECT r.personid, x.edfiid FROM campus_edfi.roster r JOIN campus_edfi.section s USING (sectionid)
                 JOIN campus_edfi.course co ON co.courseid = s.courseid JOIN campus.calendar c ON c.calendarid = co.calendarid
                 JOIN campus_edfi.person_edfi_id x ON x.personid = r.personid
                WHERE c.schoolid = %s AND c.endyear = %s AND x.edfiid IS NOT NULL ORDER BY r.rosterid LIMIT 1""",
            (a, YEAR)).fetchone()
        conn.execute("UPDATE campus_edfi.person_edfi_id SET edfiid = NULL WHERE personid = %s", (person,))
    before = [d for d in documents(info, "studentSectionAssociations") if d["studentReference"]["studentUniqueId"] == edfi_id]
    assert before
    summary = run(schools=[a], run_cleanup=True, confirm_cleanup=True)
    ssa = by_resource(summary)["studentSectionAssociations"]
    assert ssa["deleted"] == 0 and "cleanup_dry_run" not in ssa["error_reasons"], ssa
    after = [d for d in documents(info, "studentSectionAssociations") if d["studentReference"]["studentUniqueId"] == edfi_id]
    assert {d["id"] for d in after} == {d["id"] for d in before}


def test_cleanup_is_under_the_mass_delete_guard(edfi):
    info = edfi["info"]
    a = schools(edfi["dsn"])[0]
    assert run(all_schools=True)["status"] == "complete"
    in_scope = [d for d in documents(info, "sections") if d["courseOfferingReference"]["schoolId"] == a]
    extra = []
    for i in range(len(in_scope) + 10):  # more ODS-only sections than Campus has: over the share
        doc = bare(in_scope[0])
        doc["sectionIdentifier"] = f"ODS-MASS-{i}"
        extra.append(post(info, "sections", doc))
    refused = run(schools=[a], run_cleanup=True, confirm_cleanup=True, resources=["sections"],
                  select_dependencies=False)
    sections = by_resource(refused)["sections"]
    assert refused["status"] == "failed" and sections["status"] == "failed", sections
    assert sections["error_reasons"]["mass_delete_refused"] == len(extra) and sections["deleted"] == 0
    assert set(extra) <= ids(info, "sections")
    allowed = run(schools=[a], run_cleanup=True, confirm_cleanup=True, confirm_deletes=True, resources=["sections"],
                  select_dependencies=False)
    assert by_resource(allowed)["sections"]["deleted"] == len(extra)
    assert not set(extra) & ids(info, "sections")


def test_documents_without_a_school_year_are_left_alone_on_shared_routes(edfi):
    """studentSchoolAssociations carry no school year: on an API that keeps every year (shared
    routes) last year's would look absent from this year's Campus, so the clean-up does not read them."""
    info = edfi["info"]
    a = schools(edfi["dsn"])[0]
    assert run(all_schools=True)["status"] == "complete"
    ssa = bare(next(d for d in documents(info, "studentSchoolAssociations") if d["schoolReference"]["schoolId"] == a))
    ssa["entryDate"] = "2019-08-20"  # an enrollment of an earlier year
    old = post(info, "studentSchoolAssociations", ssa)
    summary = run(schools=[a], run_cleanup=True, confirm_cleanup=True)
    assert by_resource(summary)["studentSchoolAssociations"]["deleted"] == 0
    notes = details(summary["batch_id"])["cleanup"]
    assert "no school year" in notes["studentSchoolAssociations"]["skipped"]
    assert "name no school" in notes["students"]["skipped"]
    assert notes["sections"]["read"] > 0 and notes["sections"]["absent"] == 0 and notes["sections"]["confirmed"]
    assert old in ids(info, "studentSchoolAssociations")


def test_year_specific_api_cleans_documents_without_a_school_year(deployment, make_db, tmp_path, monkeypatch):
    """On year-specific routes (here 7.x context-year) the API holds one school year, so an
    enrollment Campus does not have is the clean-up's, and a dry run reports it."""
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path, routes="context-year", school_year=YEAR)
    try:
        info = api.info()
        root = info["oauth_url"].rsplit("/oauth/token", 1)[0]
        monkeypatch.setenv("AIRFLOW_CONN_EDFI_DEMO", json.dumps({
            "conn_type": "http", "host": root, "login": info["key"], "password": info["secret"],
            "extra": {"route_style": "context-year"}}))
        tennessee_config(tmp_path, monkeypatch)
        a = schools(deployment["districts"]["0101"])[0]
        assert run(all_schools=True)["status"] == "complete"
        ssa = bare(next(d for d in documents(info, "studentSchoolAssociations")
                        if d["schoolReference"]["schoolId"] == a))
        ssa["entryDate"] = "2026-07-01"
        extra = post(info, "studentSchoolAssociations", ssa)
        dry = run(schools=[a], run_cleanup=True)
        result = by_resource(dry)["studentSchoolAssociations"]
        assert result["error_reasons"].get("cleanup_dry_run") == 1, result
        assert [d["natural_key"] for d in cleanup_rows(dry["batch_id"])
                if d["resource"] == "studentSchoolAssociations"] == [
            json.dumps(["2026-07-01", a, ssa["studentReference"]["studentUniqueId"]], separators=(",", ":"))]
        assert extra in ids(info, "studentSchoolAssociations")
    finally:
        api.stop()


def test_person_ids_narrow_the_cleanup_to_those_people(edfi):
    info, dsn = edfi["info"], edfi["dsn"]
    a = schools(dsn)[0]
    assert run(all_schools=True)["status"] == "complete"
    _, assoc = ods_only_section(info, a, "ODS-ONLY-P")
    doc = next(d for d in documents(info, "studentSectionAssociations") if d["id"] == assoc)
    student = doc["studentReference"]["studentUniqueId"]
    with psycopg.connect(dsn) as conn:
        person = conn.execute("SELECT personid FROM campus_edfi.person_edfi_id WHERE edfiid = %s", (student,)).fetchone()[0]
        other = conn.execute("SELECT min(personid) FROM campus_edfi.person_edfi_id WHERE edfiid IS NOT NULL"
                             " AND personid <> %s", (person,)).fetchone()[0]
    elsewhere = by_resource(run(schools=[a], run_cleanup=True, person_ids=str(other)))
    assert "cleanup_dry_run" not in elsewhere["studentSectionAssociations"]["error_reasons"]
    assert "sections" not in elsewhere or "cleanup_dry_run" not in elsewhere["sections"]["error_reasons"]
    mine = by_resource(run(schools=[a], run_cleanup=True, person_ids=str(person)))
    assert mine["studentSectionAssociations"]["error_reasons"].get("cleanup_dry_run") == 1


def test_an_in_process_run_refuses_run_cleanup_without_the_cleanup_step(edfi):
    from campus_sync.edfi import resync

    with pytest.raises(resync.EdfiRequestError, match="run_cleanup needs the clean-up's delete step"):
        resync.run({"configuration": "demo", "all_schools": True, "run_cleanup": True}, user="tester")


@pytest.mark.parametrize("params, message", [
    ({"configuration": "demo", "all_schools": True, "confirm_cleanup": True}, "confirm_cleanup needs run_cleanup"),
    ({"configuration": "tn", "all_schools": True, "run_cleanup": True, "course_ids": "5"},
     "run_cleanup cannot be narrowed by course_ids or section_ids"),
    ({"configuration": "tn", "all_schools": True, "run_cleanup": True, "confirm_cleanup": "yes"},
     "confirm_cleanup must be true or false"),
])
def test_cleanup_requests_are_checked(params, message):
    from campus_sync.edfi import resync

    with pytest.raises(resync.EdfiRequestError) as refused:
        resync.parse_request(params)
    assert message in str(refused.value)


def test_scopes_and_keys_of_the_resources():
    """Where each resource names its school, year and person; a date the API returns with a time
    compares as the date Campus sends."""
    from campus_sync.edfi import cleanup, model

    m = model.load()
    scope = {r: cleanup.scope_of(m, m.resource(r)) for r in ("sections", "courses", "students",
                                                            "studentSchoolAssociations", "staffSectionAssociations")}
    assert scope["sections"] == cleanup.Scope(("courseOfferingReference.schoolId", "schoolId"),
                                              ("courseOfferingReference.schoolYear", "schoolYear"), None)
    assert scope["courses"].school == ("educationOrganizationReference.educationOrganizationId", "educationOrganizationId")
    assert scope["students"].school is None and scope["students"].person == ("studentUniqueId", "studentUniqueId")
    assert scope["studentSchoolAssociations"].year is None
    assert scope["staffSectionAssociations"].person == ("staffReference.staffUniqueId", "staffUniqueId")
    assert "no school" in cleanup.skip_reason(scope["students"], "context-year", False)
    assert "no school year" in cleanup.skip_reason(scope["studentSchoolAssociations"], "shared", False)
    assert cleanup.skip_reason(scope["studentSchoolAssociations"], "year", False) is None
    assert "names people" in cleanup.skip_reason(scope["sections"], "shared", True)
    res = m.resource("studentSchoolAssociations")
    doc = {"studentReference": {"studentUniqueId": "S1"}, "schoolReference": {"schoolId": 7}, "entryDate": "2026-08-15"}
    older = {**doc, "entryDate": "2026-08-15T00:00:00"}
    assert cleanup.key_text(m, res, older) == cleanup.key_text(m, res, doc) == '["2026-08-15",7,"S1"]'
