"""The Ed-Fi resource model (include/edfi/): complete for the Campus resync, consistent, and
refusing a broken model with a message naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from campus_sync.edfi import model as edfi_model
from campus_sync.edfi.model import ModelError, iter_properties

CAMPUS_RESOURCES = [
    "schools", "calendars", "calendarDates", "sessions", "gradingPeriods", "classPeriods", "locations",
    "courses", "courseOfferings", "sections", "staffs", "staffEducationOrganizationAssignmentAssociations",
    "staffSchoolAssociations", "staffSectionAssociations", "students", "studentSchoolAssociations",
    "studentEducationOrganizationAssociations", "studentSectionAssociations", "studentSchoolAttendanceEvents",
    "studentSectionAttendanceEvents", "grades", "courseTranscripts", "studentAcademicRecords",
]


@pytest.fixture(scope="module")
def m():
    return edfi_model.load()


def test_every_campus_resource_is_declared_with_identity_and_group(m):
    for name in CAMPUS_RESOURCES:
        r = m.resource(name)
        assert r.served and r.kind == "resource", name
        assert r.identity and r.key_paths, name
        assert r.campus_resync_group in (1, 2, 3, 4, 5), name
    assert m.data_standard["version"] == "5.2.0"
    grouped = [n for group in m.campus_resync_order() for n in group]
    assert sorted(grouped) == sorted(CAMPUS_RESOURCES)


def test_natural_keys_follow_the_data_standard(m):
    """Spot checks against the Ed-Fi DS 5.2 primary keys (ODS 0020-Tables.sql)."""
    assert m.resource("students").key_paths == ("studentUniqueId",)
    assert m.resource("studentSchoolAssociations").key_paths == (
        "entryDate", "schoolReference.schoolId", "studentReference.studentUniqueId")
    assert m.resource("gradingPeriods").key_paths == (
        "gradingPeriodDescriptor", "gradingPeriodName", "schoolReference.schoolId", "schoolYearTypeReference.schoolYear")
    assert m.resource("staffSectionAssociations").key_paths[0] == "beginDate"  # part of the key since DS 5
    # courseOfferings: schoolReference.schoolId and sessionReference.schoolId are one key field
    assert m.resource("courseOfferings").key_paths == (
        "localCourseCode", "schoolReference.schoolId", "sessionReference.schoolYear", "sessionReference.sessionName")
    # grades: the grading period's school year is its own key field (not unified with the section's)
    assert "gradingPeriodReference.schoolYear" in m.resource("grades").key_paths
    assert "studentSectionAssociationReference.schoolYear" in m.resource("grades").key_paths


def test_reference_fields_are_the_targets_natural_key(m):
    ref = m.resource("sections").properties["courseOfferingReference"]
    assert ref.field_names == ("localCourseCode", "schoolId", "schoolYear", "sessionName")
    assert m.reference_key(ref, {"localCourseCode": "ALG-1", "schoolId": 1, "schoolYear": 2027, "sessionName": "Fall"}) == \
        m.key_of(m.resource("courseOfferings"), {"localCourseCode": "ALG-1", "schoolReference": {"schoolId": 1},
                                                 "sessionReference": {"schoolId": 1, "schoolYear": 2027, "sessionName": "Fall"}})
    # a reference field named differently from the target's key path
    gp = m.resource("studentSchoolAssociations").properties["graduationPlanReference"]
    assert "graduationSchoolYear" in gp.field_names


def test_every_descriptor_has_a_resource_and_every_reference_a_target(m):
    for r in m.resources.values():
        for p in iter_properties(r):
            if p.kind == "descriptor":
                assert m.descriptor_resource(p.descriptor).kind == "descriptor"
                assert p.descriptor in m.descriptor_values
            if p.kind == "reference":
                assert p.target in m.resources
    values = m.descriptor_values["GradeLevelDescriptor"]
    assert "Ninth grade" in [v.code_value for v in values]
    assert m.descriptor_uri("GradeLevelDescriptor", "Ninth grade") == "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"
    assert m.descriptor_key("uri://ed-fi.org/GradeLevelDescriptor#NINTH GRADE") == \
        m.descriptor_key("uri://ed-fi.org/GradeLevelDescriptor#Ninth grade")


def test_dependency_order_puts_every_resource_after_what_it_refers_to(m):
    deps = m.dependencies()
    order = {}
    for d in deps:
        order.setdefault(d["resource"].rsplit("/", 1)[1], []).append((d["order"], d["operations"]))
    for name, entries in order.items():
        r = m.resource(name)
        first = min(o for o, _ in entries)
        for target in m.references_of(r):
            if target != name and m.resource(target).served:
                assert first > min(o for o, _ in order[target]), (name, target)
    assert order["gradeLevelDescriptors"] == [(1, ["Create", "Update"])]
    # persons: created early, updated after the association that authorizes them
    assert [ops for _, ops in sorted(order["students"])] == [["Create"], ["Update"]]
    assert max(o for o, _ in order["students"]) > order["studentSchoolAssociations"][0][0]
    assert max(o for o, _ in order["staffs"]) > order["staffEducationOrganizationAssignmentAssociations"][0][0]
    assert deps == sorted(deps, key=lambda d: (d["order"], d["resource"]))


def test_campus_resync_order_respects_references_within_a_group(m):
    for group in m.campus_resync_order():
        for i, name in enumerate(group):
            later = set(group[i + 1:])
            assert not (m.references_of(m.resource(name)) & later), (name, later)


# ---------------------------------------------------------------------- broken models
@pytest.fixture
def model_copy(tmp_path) -> Path:
    root = tmp_path / "edfi"
    shutil.copytree(edfi_model.model_dir(), root)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_copy_loads(model_copy):
    assert edfi_model.load(model_copy).resource("schools").identity == ("schoolId",)


@pytest.mark.parametrize("file,old,new,message", [
    ("resources/calendars.yaml", "reference: schools", "reference: skools", "calendars.yaml"),
    ("resources/calendars.yaml", "identity: [calendarCode,", "identity: [calendarKode,", "calendarKode"),
    ("resources/students.yaml", "type: date, required: true", "type: datum, required: true", "unknown type 'datum'"),
    ("resources/sections.yaml", "{descriptor: CreditTypeDescriptor}", "{descriptor: CreditType}", "ending in Descriptor"),
    ("descriptors.yaml", "  TermDescriptor:\n", "  TermDescriptorX:\n", "no entry for TermDescriptor"),
    ("resources/grades.yaml", "studentSectionAssociationReference: {reference: studentSectionAssociations, required: true}",
     "studentSectionAssociationReference: {reference: studentSectionAssociations, required: true, "
     "fields: {x: nowhere}}", "not a key path"),
])
def test_a_broken_model_is_refused_naming_the_problem(model_copy, file, old, new, message):
    _edit(model_copy / file, old, new)
    with pytest.raises(ModelError, match=message):
        edfi_model.load(model_copy)


def test_a_resource_file_must_be_named_after_its_resource(model_copy):
    (model_copy / "resources" / "schools.yaml").rename(model_copy / "resources" / "school.yaml")
    with pytest.raises(ModelError, match="named after it"):
        edfi_model.load(model_copy)


def test_two_target_fields_with_one_name_need_explicit_fields(model_copy):
    """grades' key has two schoolYear paths (not unified): a reference to grades must name them."""
    path = model_copy / "resources" / "studentAcademicRecords.yaml"
    _edit(path, "  termDescriptor: {descriptor: TermDescriptor, required: true}\n",
          "  termDescriptor: {descriptor: TermDescriptor, required: true}\n"
          "  gradeReference: {reference: grades}\n")
    with pytest.raises(ModelError, match="both default to field 'schoolYear'"):
        edfi_model.load(model_copy)


def test_data_standard_4_keys_required_fields_and_descriptor_values():
    m4 = edfi_model.load(data_standard="4.0")
    assert m4.data_standard["version"] == "4.0.0"
    assert all(r.data_standard == "4.0" for r in m4.resources.values())
    assert m4.resource("gradingPeriods").key_paths == (
        "gradingPeriodDescriptor", "periodSequence", "schoolReference.schoolId", "schoolYearTypeReference.schoolYear")
    # references follow their target's key: a DS 4.0 grade names its grading period by periodSequence
    assert "periodSequence" in m4.resource("grades").properties["gradingPeriodReference"].field_names
    assert "beginDate" not in " ".join(m4.resource("staffSectionAssociations").key_paths)
    assert m4.resource("courseTranscripts").properties["earnedCredits"].required
    assert m4.property_at(m4.resource("courses"), "educationOrganizationReference.educationOrganizationId").type == "int32"
    races = [v.code_value for v in m4.descriptor_values["RaceDescriptor"]]
    assert "Black - African American" in races and "Black or African American" not in races
    with pytest.raises(ModelError, match="unknown Ed-Fi Data Standard '3.3'"):
        edfi_model.load(data_standard="3.3")


def test_query_parameters_and_the_natural_key_query(m):
    params = m.query_parameters(m.resource("courseOfferings"))
    assert params["schoolId"][0] == ("schoolReference.schoolId", "sessionReference.schoolId")  # key-unified: one name
    assert params["sessionName"][1].type == "string" and params["courseCode"][0] == ("courseReference.courseCode",)
    doc = {"localCourseCode": "A", "schoolReference": {"schoolId": 1},
           "sessionReference": {"schoolId": 1, "schoolYear": 2027, "sessionName": "Fall"}}
    assert m.key_query(m.resource("courseOfferings"), doc) == {"localCourseCode": "A", "schoolId": 1, "schoolYear": 2027,
                                                               "sessionName": "Fall"}
