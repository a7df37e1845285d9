"""Document checks without a server: what the local API refuses with 400 before it looks at data,
and how it reads values (the same checks the sender can run before sending)."""

from __future__ import annotations

import pytest

from campus_sync.edfi import model as edfi_model
from campus_sync.edfi.validate import check, dangerous


@pytest.fixture(scope="module")
def m():
    return edfi_model.load()


def ssa(**over) -> dict:
    doc = {"studentReference": {"studentUniqueId": "604821"}, "schoolReference": {"schoolId": 255901001},
           "entryDate": "2026-08-20", "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def errors(m, resource: str, doc) -> dict:
    return check(m, m.resource(resource), doc).errors


def test_a_valid_document_passes_and_collects_descriptors_and_references(m):
    c = check(m, m.resource("studentSchoolAssociations"), ssa())
    assert c.errors == {}
    assert [d[:3] for d in c.descriptors] == [("$.entryGradeLevelDescriptor", "GradeLevelDescriptor",
                                               "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade")]
    assert sorted(p for p, _, _ in c.references) == ["$.schoolReference", "$.studentReference"]


@pytest.mark.parametrize("over,path,message", [
    ({"entryDate": None}, "$.entryDate", "EntryDate is required."),
    ({"schoolReference": {}}, "$.schoolReference.schoolId", "SchoolId is required."),
    ({"schoolReference": 255901001}, "$.schoolReference", "must be a JSON object"),
    ({"entryDate": "2026-02-30"}, "$.entryDate", "must be a date"),
    ({"entryDate": 20260820}, "$.entryDate", "must be a date"),
    ({"schoolReference": {"schoolId": "abc"}}, "$.schoolReference.schoolId", "must be a whole number"),
    ({"schoolReference": {"schoolId": 1.5}}, "$.schoolReference.schoolId", "must be a whole number"),
    ({"schoolReference": {"schoolId": 2 ** 63}}, "$.schoolReference.schoolId", "must be between"),
    ({"primarySchool": "yes"}, "$.primarySchool", "must be true or false"),
    ({"primarySchool": 2}, "$.primarySchool", "must be true or false"),
    ({"fullTimeEquivalency": 10}, "$.fullTimeEquivalency", "must be between"),
    ({"studentReference": {"studentUniqueId": " 604821"}}, "$.studentReference.studentUniqueId",
     "cannot contain leading or trailing spaces"),
    ({"studentReference": {"studentUniqueId": "x" * 33}}, "$.studentReference.studentUniqueId", "at most 32 characters"),
    ({"studentReference": {"studentUniqueId": 604821}}, "$.studentReference.studentUniqueId", "must be a string"),
    ({"entryGradeLevelDescriptor": 9}, "$.entryGradeLevelDescriptor", "must be a descriptor URI"),
    ({"educationPlans": {}}, "$.educationPlans", "must be a JSON array"),
    ({"educationPlans": [{}]}, "$.educationPlans[0].educationPlanDescriptor", "is required"),
])
def test_refusals_name_the_field(m, over, path, message):
    errs = errors(m, "studentSchoolAssociations", ssa(**over))
    assert path in errs, errs
    assert any(message in e for e in errs[path]), errs


def test_all_problems_are_reported_at_once(m):
    errs = errors(m, "students", {"studentUniqueId": "1"})
    assert set(errs) == {"$.birthDate", "$.firstName", "$.lastSurname"}


def test_values_are_read_as_an_ed_fi_api_reads_them(m):
    c = check(m, m.resource("studentSchoolAssociations"), ssa(
        schoolReference={"schoolId": "255901001"}, primarySchool="TRUE", repeatGradeIndicator=0, fullTimeEquivalency="0.5",
        PrimarySchool=False,
        entryDate="2026-08-20T00:00:00", unknownProperty=1, exitWithdrawDate=None,
        calendarReference={"calendarCode": "C", "schoolId": 255901001, "schoolYear": 2027,
                           "link": {"rel": "Calendar", "href": "/ed-fi/calendars/x"}}))
    assert c.errors == {}
    d = c.document
    assert d["schoolReference"] == {"schoolId": 255901001}
    assert d["primarySchool"] is True and d["fullTimeEquivalency"] == 0.5 and d["entryDate"] == "2026-08-20"
    assert d["repeatGradeIndicator"] is False
    assert "unknownProperty" not in d and "PrimarySchool" not in d and "exitWithdrawDate" not in d and "link" not in d["calendarReference"]


def test_key_unification(m):
    errs = errors(m, "studentSchoolAssociations", ssa(
        calendarReference={"calendarCode": "C", "schoolId": 255901002, "schoolYear": 2027}))
    msg = "All values supplied for 'schoolId' must match"
    assert any(msg in e for e in errs["$.calendarReference.schoolId"]), errs
    assert any(msg in e for e in errs["$.schoolReference.schoolId"]), errs
    # across a collection: a section's class periods belong to the section's school
    section = {"sectionIdentifier": "S1", "courseOfferingReference": {"localCourseCode": "A", "schoolId": 1,
                                                                       "schoolYear": 2027, "sessionName": "Fall"},
               "classPeriods": [{"classPeriodReference": {"classPeriodName": "P1", "schoolId": 2}}]}
    errs = errors(m, "sections", section)
    assert "$.classPeriods[0].classPeriodReference.schoolId" in errs, errs


def test_required_collections_and_duplicates(m):
    school = {"schoolId": 1, "nameOfInstitution": "S",
              "educationOrganizationCategories": [{"educationOrganizationCategoryDescriptor": "uri://ed-fi.org/X#a"}],
              "gradeLevels": []}
    assert errors(m, "schools", school) == {"$.gradeLevels": ["GradeLevels must have at least one item."]}
    school["gradeLevels"] = [{"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"},
                             {"gradeLevelDescriptor": "URI://ED-FI.ORG/GradeLevelDescriptor#ninth grade"}]
    assert "$.gradeLevels[1]" in errors(m, "schools", school)


def test_markup_that_could_be_dangerous_downstream(m):
    assert dangerous("<script>") and dangerous("a&#x3c;b") and dangerous("<!--") and dangerous("</b>")
    assert not dangerous("a < b") and not dangerous("Tom & Jerry") and not dangerous("x<")
    errs = errors(m, "students", {"studentUniqueId": "1", "firstName": "<b>Ada", "lastSurname": "L", "birthDate": "2010-01-01"})
    assert "could be dangerous" in errs["$.firstName"][0]


def test_an_object_body_is_required(m):
    assert errors(m, "students", ["not", "an", "object"]) == {"$": ["The request body must be a JSON object."]}
