"""Every resource of the Campus resync, over real HTTP, in resync order: one document each is
accepted; every reference must resolve (409 otherwise); a document that others refer to cannot
be deleted (409); deleting in reverse order empties the lot."""

from __future__ import annotations

import pytest
from edfi_helpers import NINTH, SCHOOL_CATEGORY, Api, next_id, problem

from campus_sync.edfi import model as edfi_model

pytestmark = pytest.mark.db

D = "uri://ed-fi.org/"


def chain(n: int) -> list[tuple[str, dict]]:
    """One valid document of every served resource (and a local education agency), in an order
    that creates what each refers to first; `n` makes every natural key new."""
    lea, sch = 990000 + n, 990000000 + n
    stu, stf = f"S{n}", f"T{n}"
    school_ref = {"schoolId": sch}
    year = {"schoolYear": 2027}
    session_ref = {"schoolId": sch, "schoolYear": 2027, "sessionName": "Fall"}
    gp_ref = {"gradingPeriodDescriptor": D + "GradingPeriodDescriptor#First Semester", "gradingPeriodName": "S1",
              "schoolId": sch, "schoolYear": 2027}
    section_ref = {"localCourseCode": "ALG-1", "schoolId": sch, "schoolYear": 2027, "sessionName": "Fall",
                   "sectionIdentifier": "ALG-1-01"}
    return [
        ("localEducationAgencies", {"localEducationAgencyId": lea, "nameOfInstitution": "District",
                                    "localEducationAgencyCategoryDescriptor": D + "LocalEducationAgencyCategoryDescriptor#Independent charter district",
                                    "categories": [{"educationOrganizationCategoryDescriptor": D + "EducationOrganizationCategoryDescriptor#Local Education Agency"}]}),
        ("schools", {"schoolId": sch, "nameOfInstitution": "High", "localEducationAgencyReference": {"localEducationAgencyId": lea},
                     "educationOrganizationCategories": [{"educationOrganizationCategoryDescriptor": SCHOOL_CATEGORY}],
                     "gradeLevels": [{"gradeLevelDescriptor": NINTH}]}),
        ("calendars", {"calendarCode": "MAIN", "schoolReference": school_ref, "schoolYearTypeReference": year,
                       "calendarTypeDescriptor": D + "CalendarTypeDescriptor#School",
                       "gradeLevels": [{"gradeLevelDescriptor": NINTH}]}),
        ("calendarDates", {"calendarReference": {"calendarCode": "MAIN", "schoolId": sch, "schoolYear": 2027},
                           "date": "2026-09-01", "calendarEvents": [{"calendarEventDescriptor": D + "CalendarEventDescriptor#Instructional day"}]}),
        ("gradingPeriods", {"gradingPeriodDescriptor": D + "GradingPeriodDescriptor#First Semester", "gradingPeriodName": "S1",
                            "schoolReference": school_ref, "schoolYearTypeReference": year, "periodSequence": 1,
                            "beginDate": "2026-08-20", "endDate": "2026-12-20", "totalInstructionalDays": 80}),
        ("sessions", {"schoolReference": school_ref, "schoolYearTypeReference": year, "sessionName": "Fall",
                      "beginDate": "2026-08-20", "endDate": "2026-12-20", "termDescriptor": D + "TermDescriptor#Fall Semester",
                      "totalInstructionalDays": 80, "gradingPeriods": [{"gradingPeriodReference": gp_ref}]}),
        ("classPeriods", {"classPeriodName": "P1", "schoolReference": school_ref,
                          "meetingTimes": [{"startTime": "08:00", "endTime": "08:50:00"}]}),
        ("locations", {"classroomIdentificationCode": "R101", "schoolReference": school_ref, "maximumNumberOfSeats": 30}),
        ("courses", {"courseCode": "ALG", "educationOrganizationReference": {"educationOrganizationId": lea},
                     "courseTitle": "Algebra", "numberOfParts": 1,
                     "identificationCodes": [{"courseIdentificationSystemDescriptor": D + "CourseIdentificationSystemDescriptor#LEA course code",
                                              "identificationCode": "ALG"}]}),
        ("courseOfferings", {"localCourseCode": "ALG-1", "schoolReference": school_ref, "sessionReference": session_ref,
                             "courseReference": {"courseCode": "ALG", "educationOrganizationId": lea}}),
        ("sections", {"sectionIdentifier": "ALG-1-01",
                      "courseOfferingReference": {"localCourseCode": "ALG-1", "schoolId": sch, "schoolYear": 2027, "sessionName": "Fall"},
                      "locationReference": {"classroomIdentificationCode": "R101", "schoolId": sch},
                      "classPeriods": [{"classPeriodReference": {"classPeriodName": "P1", "schoolId": sch}}]}),
        ("staffs", {"staffUniqueId": stf, "firstName": "Grace", "lastSurname": "Hopper"}),
        ("staffEducationOrganizationAssignmentAssociations", {
            "staffReference": {"staffUniqueId": stf}, "educationOrganizationReference": {"educationOrganizationId": sch},
            "staffClassificationDescriptor": D + "StaffClassificationDescriptor#Secondary Teacher", "beginDate": "2026-08-01"}),
        ("staffSchoolAssociations", {"staffReference": {"staffUniqueId": stf}, "schoolReference": school_ref,
                                     "programAssignmentDescriptor": D + "ProgramAssignmentDescriptor#Regular Education",
                                     "calendarReference": {"calendarCode": "MAIN", "schoolId": sch, "schoolYear": 2027}}),
        ("staffSectionAssociations", {"staffReference": {"staffUniqueId": stf}, "sectionReference": section_ref,
                                      "beginDate": "2026-08-20",
                                      "classroomPositionDescriptor": D + "ClassroomPositionDescriptor#Teacher of Record"}),
        ("students", {"studentUniqueId": stu, "firstName": "Ada", "lastSurname": "Lovelace", "birthDate": "2011-12-10",
                      "birthSexDescriptor": D + "SexDescriptor#Female"}),
        ("studentSchoolAssociations", {"studentReference": {"studentUniqueId": stu}, "schoolReference": school_ref,
                                       "entryDate": "2026-08-20", "entryGradeLevelDescriptor": NINTH,
                                       "calendarReference": {"calendarCode": "MAIN", "schoolId": sch, "schoolYear": 2027},
                                       "schoolYearTypeReference": year, "classOfSchoolYearTypeReference": {"schoolYear": 2030}}),
        ("studentEducationOrganizationAssociations", {"studentReference": {"studentUniqueId": stu},
                                                      "educationOrganizationReference": {"educationOrganizationId": lea},
                                                      "sexDescriptor": D + "SexDescriptor#Female",
                                                      "races": [{"raceDescriptor": D + "RaceDescriptor#White"}]}),
        ("studentSectionAssociations", {"studentReference": {"studentUniqueId": stu}, "sectionReference": section_ref,
                                        "beginDate": "2026-08-20"}),
        ("studentSchoolAttendanceEvents", {"studentReference": {"studentUniqueId": stu}, "schoolReference": school_ref,
                                           "sessionReference": session_ref, "eventDate": "2026-09-02",
                                           "attendanceEventCategoryDescriptor": D + "AttendanceEventCategoryDescriptor#Excused Absence"}),
        ("studentSectionAttendanceEvents", {"studentReference": {"studentUniqueId": stu}, "sectionReference": section_ref,
                                            "eventDate": "2026-09-02",
                                            "attendanceEventCategoryDescriptor": D + "AttendanceEventCategoryDescriptor#Tardy"}),
        ("grades", {"studentSectionAssociationReference": {**section_ref, "studentUniqueId": stu, "beginDate": "2026-08-20"},
                    "gradingPeriodReference": gp_ref, "gradeTypeDescriptor": D + "GradeTypeDescriptor#Grading Period",
                    "letterGradeEarned": "A", "numericGradeEarned": 95.5}),
        ("studentAcademicRecords", {"studentReference": {"studentUniqueId": stu},
                                    "educationOrganizationReference": {"educationOrganizationId": sch},
                                    "schoolYearTypeReference": year, "termDescriptor": D + "TermDescriptor#Fall Semester",
                                    "sessionEarnedCredits": 1.0}),
        ("courseTranscripts", {"courseReference": {"courseCode": "ALG", "educationOrganizationId": lea},
                               "studentAcademicRecordReference": {"studentUniqueId": stu, "educationOrganizationId": sch,
                                                                  "schoolYear": 2027, "termDescriptor": D + "TermDescriptor#Fall Semester"},
                               "courseAttemptResultDescriptor": D + "CourseAttemptResultDescriptor#Pass", "earnedCredits": 1.0,
                               "responsibleTeacherStaffReference": {"staffUniqueId": stf}}),
    ]


def test_the_chain_covers_every_served_resource():
    m = edfi_model.load()
    served = {r.name for r in m.served() if r.kind == "resource"} - {"schoolYearTypes"}
    assert {name for name, _ in chain(0)} == served


def _unresolvable(m, resource: str, doc: dict) -> list[tuple[str, dict]]:
    """For each reference the document holds, a copy where that reference names nothing: a string
    field gets a suffix (or a number field a new value) outside every key-unified group."""
    r = m.resource(resource)
    unified = {p for g in r.unified for p in g}
    out = []
    for name, prop in r.properties.items():
        if prop.kind != "reference" or name not in doc:
            continue
        target = m.resource(prop.target)
        for field, tpath in prop.fields:
            end = m.property_at(target, tpath)
            if f"{name}.{field}" in unified or end.kind == "descriptor":
                continue
            broken = {**doc, name: dict(doc[name])}
            value = broken[name][field]
            if end.type == "date":
                broken[name][field] = "1901-01-01"
            elif isinstance(value, str):
                broken[name][field] = value + "-missing"
            else:
                broken[name][field] = 1990 if field.endswith("choolYear") else value + 7_000_000
            out.append((f"{name}.{field}", broken))
            break
    return out


def _referred(m, docs: list[tuple[str, dict]]) -> set[str]:
    """Resources of the chain that another document of the chain refers to."""
    from campus_sync.edfi.validate import check

    lea = docs[0][1]["localEducationAgencyId"]
    out = set()
    for resource, doc in docs:
        for _, prop, ref in check(m, m.resource(resource), doc).references:
            if prop.target == "educationOrganizations":
                out.add("localEducationAgencies" if ref["educationOrganizationId"] == lea else "schools")
            elif prop.target != "schoolYearTypes":
                out.add(prop.target)
    return out


def test_every_resource_round_trips_and_every_reference_must_resolve(api: Api):
    m = edfi_model.load()
    n = next_id()
    ids: list[tuple[str, str]] = []
    checked_refs = queried = 0
    for resource, doc in chain(n):
        for path, broken in _unresolvable(m, resource, doc):
            body = problem(api.post(resource, broken), 409, "data-conflict:unresolved-reference")
            assert "does not exist" in body["detail"], (resource, path, body)
            checked_refs += 1
        r = api.post(resource, doc)
        assert r.status_code == 201, (resource, r.text)
        doc_id = r.headers["location"].rsplit("/", 1)[1]
        ids.append((resource, doc_id))
        got = api.get(resource, doc_id).json()
        for key, value in doc.items():
            if not isinstance(value, (dict, list)):
                assert got[key] == value, (resource, key, got)
        assert api.post(resource, doc).status_code == 200, resource  # the same natural key again: an update
        try:
            by_key = m.key_query(m.resource(resource), doc)
        except KeyError:  # grades: two schoolYear key fields, one query name
            continue
        found = api.get(resource, params=by_key)
        assert [d["id"] for d in found.json()] == [doc_id], (resource, by_key, found.text)
        queried += 1
    assert checked_refs >= 25 and queried >= 22

    # referred-to documents cannot go; in reverse order everything can
    referred = _referred(m, chain(n))
    assert len(referred) >= 14
    for resource, doc_id in ids:
        if resource in referred:
            body = problem(api.delete(resource, doc_id), 409, "data-conflict:dependent-item-exists")
            assert "is referenced by an existing" in body["detail"]
    for resource, doc_id in reversed(ids):
        r = api.delete(resource, doc_id)
        assert r.status_code == 204, (resource, r.text)
        assert api.get(resource, doc_id).status_code == 404
