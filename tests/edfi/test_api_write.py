"""POST, PUT and DELETE over real HTTP: the answers and every refusal of the client contract."""

from __future__ import annotations

import re

import pytest
from edfi_helpers import NINTH, Api, next_id, problem, school, school_with_session, session, ssa, student

pytestmark = pytest.mark.db

HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ---------------------------------------------------------------------- POST
def test_post_creates_201_then_updates_200_with_location_and_etag(api: Api):
    sid = 255800000 + next_id()
    r1 = api.post("schools", school(sid))
    assert r1.status_code == 201 and r1.content == b""
    loc = r1.headers["location"]
    assert loc.startswith(api.server.data + "/schools/") and HEX32.match(loc.rsplit("/", 1)[1])
    etag1 = r1.headers["etag"]
    assert re.match(r'^"\d+"$', etag1)
    r2 = api.post("schools", school(sid, nameOfInstitution="Renamed"))
    assert r2.status_code == 200
    assert r2.headers["location"] == loc and r2.headers["etag"] != etag1
    got = api.get("schools", loc.rsplit("/", 1)[1])
    assert got.json()["nameOfInstitution"] == "Renamed" and got.headers["etag"] == r2.headers["etag"]
    assert got.json()["_etag"] == r2.headers["etag"].strip('"')


def test_post_with_an_id_is_refused(api: Api):
    body = problem(api.post("schools", {**school(255800000 + next_id()), "id": "0" * 32}), 400,
                   "bad-request:data-validation-failed")
    assert "'id' property should not be included" in body["errors"][0]


def test_missing_required_field_wrong_type_and_unknown_descriptor_name_the_field(api: Api):
    doc = school(255800000 + next_id())
    del doc["nameOfInstitution"]
    body = problem(api.post("schools", doc), 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {"$.nameOfInstitution": ["NameOfInstitution is required."]}

    body = problem(api.post("schools", school("two-five-five")), 400, "bad-request:data-validation-failed")
    assert list(body["validationErrors"]) == ["$.schoolId"]

    body = problem(api.post("students", student(f"W{next_id()}", birthDate="10/12/2010")), 400,
                   "bad-request:data-validation-failed")
    assert list(body["validationErrors"]) == ["$.birthDate"]

    body = problem(api.post("students", student("x" * 33)), 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {"$.studentUniqueId": ["StudentUniqueId must be at most 32 characters in length."]}
    body = problem(api.post("students", student(f"W{next_id()}", firstName="<script>alert(1)</script>")), 400,
                   "bad-request:data-validation-failed")
    assert "could be dangerous" in body["validationErrors"]["$.firstName"][0]

    bad = school(255800000 + next_id(), gradeLevels=[{"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Fifteenth grade"}])
    body = problem(api.post("schools", bad), 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {"$.gradeLevels[0].gradeLevelDescriptor": [
        "GradeLevelDescriptor value 'uri://ed-fi.org/GradeLevelDescriptor#Fifteenth grade' does not exist."]}
    # a value of another descriptor is not a GradeLevelDescriptor either
    bad["gradeLevels"] = [{"gradeLevelDescriptor": "uri://ed-fi.org/TermDescriptor#Fall Semester"}]
    problem(api.post("schools", bad), 400, "bad-request:data-validation-failed")


def test_descriptors_match_without_regard_to_case_and_are_stored_as_defined(api: Api):
    sid = 255800000 + next_id()
    doc_id = api.created("schools", school(sid, gradeLevels=[{"gradeLevelDescriptor": "URI://ED-FI.ORG/gradeleveldescriptor#NINTH GRADE"}]))
    assert api.get("schools", doc_id).json()["gradeLevels"] == [{"gradeLevelDescriptor": NINTH}]


def test_key_whitespace_and_key_unification_are_refused(api: Api):
    body = problem(api.post("students", student(" 604821")), 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {"$.studentUniqueId": ["StudentUniqueId cannot contain leading or trailing spaces."]}
    sid, _ = school_with_session(api)
    bad = {"localCourseCode": "X", "schoolReference": {"schoolId": sid},
           "sessionReference": {"schoolId": sid + 1, "schoolYear": 2027, "sessionName": "Fall"},
           "courseReference": {"courseCode": "C", "educationOrganizationId": sid}}
    body = problem(api.post("courseOfferings", bad), 400, "bad-request:data-validation-failed")
    assert set(body["validationErrors"]) == {"$.schoolReference.schoolId", "$.sessionReference.schoolId"}


def test_non_json_content_type_is_415_and_an_empty_or_broken_body_400(api: Api):
    url = api.url("students")
    for ctype in ("text/plain", "application/xml", None):
        headers = {**api.headers, **({"Content-Type": ctype} if ctype else {})}
        r = api.http.post(url, content=b'{"studentUniqueId": "1"}', headers=headers)
        body = problem(r, 415, "unsupported-media-type")
        assert "Content-Type" in body["errors"][0]
    r = api.http.post(url, content=b"", headers={**api.headers, "Content-Type": "application/json"})
    assert problem(r, 400, "bad-request")["errors"] == ["A non-empty request body is required."]
    r = api.http.post(url, content=b'{"studentUniqueId": "1",,}', headers={**api.headers, "Content-Type": "application/json"})
    assert "$" in problem(r, 400, "bad-request:data-validation-failed")["validationErrors"]
    r = api.http.post(url, content=b"{}", headers={**api.headers, "Content-Type": "application/json; charset=utf-8"})
    problem(r, 400, "bad-request:data-validation-failed")  # accepted as JSON, refused for its content


# ---------------------------------------------------------------------- references
def test_references_must_resolve(api: Api):
    body = problem(api.post("sessions", session(1)), 409, "data-conflict:unresolved-reference")
    assert body["detail"] == "The referenced 'School' item does not exist."
    sid = 255800000 + next_id()
    api.created("schools", school(sid))
    for year in (1991, 2050):
        assert api.post("sessions", session(sid, year=year)).status_code == 201
    for year in (1990, 2051):
        body = problem(api.post("sessions", session(sid, year=year)), 409, "data-conflict:unresolved-reference")
        assert body["detail"] == "The referenced 'SchoolYearType' item does not exist."
    # an abstract reference resolves to a school (or a local education agency), else names the abstract entity
    course = {"courseCode": "C", "educationOrganizationReference": {"educationOrganizationId": sid}, "courseTitle": "C",
              "numberOfParts": 1, "identificationCodes": [{"courseIdentificationSystemDescriptor":
                                                           "uri://ed-fi.org/CourseIdentificationSystemDescriptor#Other",
                                                           "identificationCode": "C"}]}
    assert api.post("courses", course).status_code == 201
    course["educationOrganizationReference"] = {"educationOrganizationId": sid + 500}
    body = problem(api.post("courses", course), 409, "data-conflict:unresolved-reference")
    assert body["detail"] == "The referenced 'EducationOrganization' item does not exist."
    # a resource the local API does not serve never resolves
    stu = f"R{next_id()}"
    api.created("students", student(stu))
    plan = ssa(stu, sid, graduationPlanReference={"educationOrganizationId": sid, "graduationSchoolYear": 2030,
                                                  "graduationPlanTypeDescriptor": "uri://ed-fi.org/GraduationPlanTypeDescriptor#Standard"})
    body = problem(api.post("studentSchoolAssociations", plan), 409, "data-conflict:unresolved-reference")
    assert body["detail"] == "The referenced 'GraduationPlan' item does not exist."


def test_a_school_and_an_lea_cannot_share_an_education_organization_id(api: Api):
    sid = 255800000 + next_id()
    api.created("schools", school(sid))
    lea = {"localEducationAgencyId": sid, "nameOfInstitution": "D",
           "localEducationAgencyCategoryDescriptor": "uri://ed-fi.org/LocalEducationAgencyCategoryDescriptor#Other local education agency",
           "categories": [{"educationOrganizationCategoryDescriptor": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#Local Education Agency"}]}
    problem(api.post("localEducationAgencies", lea), 409, "data-conflict:non-unique-identity")


# ---------------------------------------------------------------------- PUT
def test_put_replaces_and_returns_204(api: Api):
    sid = 255800000 + next_id()
    doc_id = api.created("schools", school(sid, shortNameOfInstitution="SH", webSite="http://school.example"))
    r = api.put("schools", doc_id, school(sid, nameOfInstitution="Replaced"))
    assert r.status_code == 204 and r.content == b"" and re.match(r'^"\d+"$', r.headers["etag"])
    got = api.get("schools", doc_id).json()
    assert got["nameOfInstitution"] == "Replaced" and "shortNameOfInstitution" not in got and "webSite" not in got
    assert api.put("schools", "f" * 32, school(sid)).status_code == 404
    assert api.put("schools", doc_id, {**school(sid), "id": doc_id}).status_code == 204  # its own id is fine
    body = problem(api.put("schools", doc_id, {**school(sid), "id": "a" * 32}), 400, "bad-request:data-validation-failed")
    assert "does not match" in body["errors"][0]


def test_put_cannot_change_a_natural_key_unless_the_resource_allows_it(api: Api):
    sid = 255800000 + next_id()
    doc_id = api.created("schools", school(sid))
    body = problem(api.put("schools", doc_id, school(sid + 1)), 400,
                   "bad-request:data-validation-failed:key-change-not-supported")
    assert body["detail"].startswith("Identifying values for the School item cannot be changed.")


def test_a_key_change_cascades_to_the_documents_that_refer_to_it(api: Api):
    """sessions allow key updates (as an ODS configures them); a course offering follows its session."""
    sid, session_id = school_with_session(api, name="Fall")
    course = {"courseCode": "C", "educationOrganizationReference": {"educationOrganizationId": sid}, "courseTitle": "C",
              "numberOfParts": 1, "identificationCodes": [{"courseIdentificationSystemDescriptor":
                                                           "uri://ed-fi.org/CourseIdentificationSystemDescriptor#Other",
                                                           "identificationCode": "C"}]}
    api.created("courses", course)
    offering = {"localCourseCode": "C-1", "schoolReference": {"schoolId": sid},
                "sessionReference": {"schoolId": sid, "schoolYear": 2027, "sessionName": "Fall"},
                "courseReference": {"courseCode": "C", "educationOrganizationId": sid}}
    offering_id = api.created("courseOfferings", offering)
    assert api.put("sessions", session_id, session(sid, name="Autumn")).status_code == 204
    got = api.get("courseOfferings", offering_id).json()
    assert got["sessionReference"]["sessionName"] == "Autumn"
    found = api.get("courseOfferings", params={"localCourseCode": "C-1", "schoolId": sid, "sessionName": "Autumn",
                                                "schoolYear": 2027}).json()
    assert [d["id"] for d in found] == [offering_id]
    # the old natural key is free again, the new one taken
    fall_id = api.created("sessions", session(sid, name="Fall"))
    assert api.post("sessions", session(sid, name="Autumn")).status_code == 200
    # a key change onto another item's key is refused
    problem(api.put("sessions", fall_id, session(sid, name="Autumn")), 409, "data-conflict:non-unique-identity")


def test_if_match_with_a_stale_etag_is_412(api: Api):
    sid = 255800000 + next_id()
    r = api.post("schools", school(sid))
    doc_id, etag = r.headers["location"].rsplit("/", 1)[1], r.headers["etag"]
    r2 = api.put("schools", doc_id, school(sid, nameOfInstitution="B"), headers={"If-Match": etag})
    assert r2.status_code == 204
    body = problem(api.put("schools", doc_id, school(sid, nameOfInstitution="C"), headers={"If-Match": etag}), 412,
                   "optimistic-lock-failed")
    assert body["detail"] == "The item has been modified by another user."
    problem(api.delete("schools", doc_id, headers={"If-Match": etag}), 412, "optimistic-lock-failed")
    problem(api.post("schools", school(sid), headers={"If-Match": etag}), 412, "optimistic-lock-failed")
    assert api.put("schools", doc_id, school(sid, nameOfInstitution="B"), headers={"If-Match": "*"}).status_code == 204
    current = api.get("schools", doc_id).headers["etag"]
    assert api.put("schools", doc_id, school(sid, nameOfInstitution="D"), headers={"If-Match": current.strip('"')}).status_code == 204
    assert api.get("schools", doc_id).json()["nameOfInstitution"] == "D"


# ---------------------------------------------------------------------- DELETE
def test_delete_204_then_404_and_409_while_referred_to(api: Api):
    sid, session_id = school_with_session(api)
    school_id = api.get("schools", params={"schoolId": sid}).json()[0]["id"]
    body = problem(api.delete("schools", school_id), 409, "data-conflict:dependent-item-exists")
    assert body["detail"] == ("The requested action cannot be performed because this item is referenced by an "
                              "existing 'Session' item.")
    assert api.delete("sessions", session_id).status_code == 204
    assert api.get("sessions", session_id).status_code == 404
    problem(api.delete("sessions", session_id), 404, "not-found")
    assert api.delete("schools", school_id).status_code == 204


def test_a_descriptor_in_use_cannot_be_deleted_and_new_values_can_be_posted(api: Api):
    code = f"Grade {next_id()}"
    desc = {"codeValue": code, "namespace": "uri://district.example/GradeLevelDescriptor", "shortDescription": code}
    desc_id = api.created("gradeLevelDescriptors", desc)
    sid = 255800000 + next_id()
    school_id = api.created("schools", school(sid, gradeLevels=[{"gradeLevelDescriptor": f"uri://district.example/GradeLevelDescriptor#{code}"}]))
    problem(api.delete("gradeLevelDescriptors", desc_id), 409, "data-conflict:dependent-item-exists")
    api.delete("schools", school_id)
    assert api.delete("gradeLevelDescriptors", desc_id).status_code == 204
    bad = problem(api.post("gradeLevelDescriptors", {**desc, "namespace": "district"}), 400, "bad-request:data-validation-failed")
    assert "$.namespace" in bad["validationErrors"]


def test_methods_the_contract_does_not_offer_are_405_and_unknown_resources_404(api: Api):
    problem(api.http.put(api.url("schools"), json={}, headers=api.headers), 405, "method-not-allowed")
    problem(api.http.delete(api.url("schools"), headers=api.headers), 405, "method-not-allowed")
    problem(api.http.post(api.url("schools", "a" * 32), json={}, headers=api.headers), 405, "method-not-allowed")
    problem(api.http.patch(api.url("schools", "a" * 32), json={}, headers=api.headers), 405, "method-not-allowed")
    problem(api.get("schoolz"), 404, "not-found")
    problem(api.get("graduationPlans"), 404, "not-found")  # declared, but not served
    problem(api.get("educationOrganizations"), 404, "not-found")  # abstract
    assert api.get("Schools").status_code == 200  # resource names are not case-sensitive
