"""The Ed-Fi Resync's key changes, automatic resyncs (an Ed-Fi ID changed, Combine Person) and the
mass-delete guard, against the local Ed-Fi API over real HTTP."""

from __future__ import annotations

import psycopg
import pytest
from resync_helpers import by_resource, documents, point_connection, seed_edfi, start_fresh_api


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    yield {**deployment, "api": api, "info": info, "dsn": deployment["districts"]["0101"]}
    api.stop()


def run_all(**params) -> dict:
    from campus_sync.edfi import resync

    return resync.run({"configuration": "demo", "all_schools": True, **params}, user="tester")


def enrolled_people(dsn: str) -> list[tuple]:
    """(personid, edfiid, schoolid) of current-year students with an Ed-Fi ID, one enrollment each."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """SELECT e.personid, x.edfiid, min(c.schoolid) FROM campus.enrollment e
                 JOIN campus.calendar c USING (calendarid) JOIN campus_edfi.person_edfi_id x USING (personid)
                WHERE e.endyear = 2027 AND NOT e.stateexclude AND NOT c.stateexclude AND x.edfiid IS NOT NULL
                GROUP BY e.personid, x.edfiid HAVING count(*) = 1 ORDER BY e.personid""").fetchall()


def ssa_students(info) -> dict[str, set]:
    out: dict[str, set] = {}
    for d in documents(info, "studentSchoolAssociations"):
        out.setdefault(d["studentReference"]["studentUniqueId"], set()).add((d["schoolReference"]["schoolId"], d["entryDate"]))
    return out


def test_a_key_change_deletes_the_old_document_and_posts_the_new(edfi):
    run_all()
    person, edfi_id, _ = enrolled_people(edfi["dsn"])[0]
    [(school, entry)] = ssa_students(edfi["info"])[edfi_id]
    with psycopg.connect(edfi["dsn"]) as conn:
        conn.execute("UPDATE campus.enrollment SET startdate = startdate + 3 WHERE personid = %s AND endyear = 2027",
                     (person,))
    result = by_resource(run_all())["studentSchoolAssociations"]
    assert (result["inserted"], result["deleted"]) == (1, 1), result
    [(school_after, entry_after)] = ssa_students(edfi["info"])[edfi_id]
    assert school_after == school and entry_after != entry


def test_edfi_id_changed_resyncs_that_persons_resources(edfi):
    from campus_sync.edfi import resync

    run_all()
    person, old_id, _ = enrolled_people(edfi["dsn"])[0]
    sections = len([d for d in documents(edfi["info"], "studentSectionAssociations")
                    if d["studentReference"]["studentUniqueId"] == old_id])
    assert sections > 0
    with psycopg.connect(edfi["dsn"]) as conn:
        conn.execute("UPDATE campus_edfi.person_edfi_id SET edfiid = 'NEW' || edfiid WHERE personid = %s", (person,))
    summary = resync.edfi_id_changed("demo", person)
    assert summary["status"] == "complete", summary
    results = by_resource(summary)
    assert results["students"]["inserted"] == 1 and results["students"]["deleted"] == 1
    assert results["studentSchoolAssociations"]["processed"] == 1
    assert results["studentSectionAssociations"]["deleted"] == sections
    assert results["studentSectionAssociations"]["inserted"] == sections
    students = {d["studentUniqueId"] for d in documents(edfi["info"], "students")}
    assert "NEW" + old_id in students and old_id not in students
    assert old_id not in ssa_students(edfi["info"]) and "NEW" + old_id in ssa_students(edfi["info"])
    assert not [d for d in documents(edfi["info"], "studentSectionAssociations")
                if d["studentReference"]["studentUniqueId"] == old_id]


def test_combine_person_removes_the_deleted_person_and_resyncs_the_kept(edfi):
    from campus_sync.edfi import resync

    run_all()
    people = enrolled_people(edfi["dsn"])
    deleted = people[0]
    kept = next(p for p in people if p[2] != deleted[2])  # another school: the moved enrollment keeps its key unique
    with psycopg.connect(edfi["dsn"]) as conn:  # Campus's Combine Person: the records move to the kept person
        for table in ("campus.enrollment", "campus_edfi.roster"):
            conn.execute(f"UPDATE {table} SET personid = %s WHERE personid = %s", (kept[0], deleted[0]))
        conn.execute("DELETE FROM campus.personidentity WHERE personid = %s", (deleted[0],))
        conn.execute("DELETE FROM campus_edfi.person_edfi_id WHERE personid = %s", (deleted[0],))
    summary = resync.combine_person("demo", deleted[0], kept[0])
    assert summary["status"] == "complete", summary
    assert deleted[1] not in {d["studentUniqueId"] for d in documents(edfi["info"], "students")}
    ssas = ssa_students(edfi["info"])
    assert deleted[1] not in ssas
    assert {s for s, _ in ssas[kept[1]]} == {deleted[2], kept[2]}
    assert not [d for d in documents(edfi["info"], "studentSectionAssociations")
                if d["studentReference"]["studentUniqueId"] == deleted[1]]


def test_mass_delete_is_refused_unless_confirmed(edfi):
    run_all()
    before = len(documents(edfi["info"], "studentSchoolAssociations"))
    with psycopg.connect(edfi["dsn"]) as conn:
        conn.execute("DELETE FROM campus.enrollment WHERE endyear = 2027 AND enrollmentid % 10 < 7")
    refused = run_all()
    ssa = by_resource(refused)["studentSchoolAssociations"]
    assert refused["status"] == "failed" and ssa["status"] == "failed"
    assert ssa["deleted"] == 0 and ssa["error_reasons"]["mass_delete_refused"] > before // 2
    assert len(documents(edfi["info"], "studentSchoolAssociations")) == before  # nothing deleted
    confirmed = by_resource(run_all(confirm_deletes=True))["studentSchoolAssociations"]
    assert confirmed["deleted"] == ssa["error_reasons"]["mass_delete_refused"]
    assert len(documents(edfi["info"], "studentSchoolAssociations")) == before - confirmed["deleted"]
