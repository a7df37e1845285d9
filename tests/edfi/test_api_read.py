"""GET over real HTTP: paging, Total-Count, filters, stable order, by id; discovery; dependencies.

Paging tests use their own year on a year-routed server: each year is a separate store, so the
counts are exact whatever else the session stored."""

from __future__ import annotations

import pytest
from edfi_helpers import Api, Server, next_id, problem, school, student

from campus_sync.edfi import model as edfi_model

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def year_server(start_api):
    return start_api(routes="year")


@pytest.fixture(scope="module")
def paged(year_server) -> Api:
    """30 students in year 2031 of the year-routed server."""
    api = Api(Server(year_server.api, {**year_server.info, "data_url": year_server.info["base_url"] + "/data/v3/2031"}))
    for i in range(30):
        api.created("students", student(f"P{i:02d}", lastSurname="Even" if i % 2 == 0 else "Odd",
                                        birthSexDescriptor="uri://ed-fi.org/SexDescriptor#Female" if i < 5 else
                                        "uri://ed-fi.org/SexDescriptor#Male"))
    return api


def test_default_limit_25_max_500_and_total_count(paged: Api):
    r = paged.get("students")
    assert r.status_code == 200 and len(r.json()) == 25 and "total-count" not in r.headers
    r = paged.get("students", params={"limit": 500, "totalCount": "true"})
    assert len(r.json()) == 30 and r.headers["total-count"] == "30"
    assert paged.get("students", params={"limit": 0, "totalCount": "true"}).json() == []
    for bad in ("501", "-1", "ten"):
        body = problem(paged.get("students", params={"limit": bad}), 400, "bad-request:parameter-validation-failed")
        assert "Limit" in body["errors"][0]
    problem(paged.get("students", params={"offset": "-5"}), 400, "bad-request:parameter-validation-failed")


def test_pages_are_disjoint_and_in_a_stable_order(paged: Api):
    pages = [paged.get("students", params={"offset": o, "limit": 7}).json() for o in range(0, 35, 7)]
    ids = [d["id"] for p in pages for d in p]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert [d["studentUniqueId"] for d in paged.get("students", params={"limit": 30}).json()] == [f"P{i:02d}" for i in range(30)]
    again = [d["id"] for o in range(0, 35, 7) for d in paged.get("students", params={"offset": o, "limit": 7}).json()]
    assert again == ids


def test_queries_by_natural_key_and_simple_properties(paged: Api):
    got = paged.get("students", params={"studentUniqueId": "P07"}).json()
    assert [d["studentUniqueId"] for d in got] == ["P07"]
    odd = paged.get("students", params={"lastSurname": "Odd", "totalCount": "true", "limit": 100})
    assert odd.headers["total-count"] == "15" and {d["lastSurname"] for d in odd.json()} == {"Odd"}
    female = paged.get("students", params={"birthSexDescriptor": "URI://ED-FI.ORG/SexDescriptor#female"}).json()
    assert len(female) == 5
    assert paged.get("students", params={"birthSexDescriptor": "uri://ed-fi.org/SexDescriptor#Unknown"}).json() == []
    assert paged.get("students", params={"studentUniqueId": "nobody"}).json() == []
    body = problem(paged.get("students", params={"lastName": "Odd"}), 400, "bad-request:parameter-validation-failed")
    assert "'lastName' is not a query parameter of students" in body["errors"][0]
    problem(paged.get("students", params={"birthDate": "yesterday"}), 400, "bad-request:parameter-validation-failed")


def test_reference_fields_are_query_parameters(api: Api):
    sid = 255700000 + next_id()
    api.created("schools", school(sid))
    stu = f"Q{next_id()}"
    api.created("students", student(stu))
    body = {"studentReference": {"studentUniqueId": stu}, "schoolReference": {"schoolId": sid}, "entryDate": "2026-08-20",
            "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}
    doc_id = api.created("studentSchoolAssociations", body)
    for params in ({"studentUniqueId": stu}, {"schoolId": sid}, {"schoolId": str(sid), "entryDate": "2026-08-20", "studentUniqueId": stu}):
        got = api.get("studentSchoolAssociations", params=params).json()
        assert [d["id"] for d in got] == [doc_id], params


def test_get_by_id(api: Api):
    stu = f"G{next_id()}"
    r = api.post("students", student(stu))
    doc_id = r.headers["location"].rsplit("/", 1)[1]
    got = api.get("students", doc_id)
    assert got.status_code == 200 and got.headers["etag"] == r.headers["etag"]
    doc = got.json()
    assert doc["id"] == doc_id and doc["studentUniqueId"] == stu and doc["_etag"] == r.headers["etag"].strip('"')
    assert doc["_lastModifiedDate"].endswith("Z")
    problem(api.get("students", "0" * 32), 404, "not-found")
    problem(api.get("students", "not-an-id"), 404, "not-found")
    assert api.get("schools", doc_id).status_code == 404  # an id of another resource


def test_discovery(server):
    with server.client() as c:
        doc = c.get(server.base + "/").json()
        assert {"version", "dataModels", "urls"} <= set(doc)
        assert doc["dataModels"][0]["name"] == "Ed-Fi" and doc["dataModels"][0]["version"] == "5.2.0"
        assert "not an Ed-Fi ODS/API" in doc["informationalVersion"]
        urls = doc["urls"]
        assert set(urls) >= {"oauth", "dependencies", "dataManagementApi"} and "apiMode" not in doc
        assert c.get(urls["dependencies"]).status_code == 200
        token = c.post(urls["oauth"], auth=(server.info["key"], server.info["secret"]),
                       data={"grant_type": "client_credentials"}).json()["access_token"]
        r = c.get(urls["dataManagementApi"] + "ed-fi/schools", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200


def test_dependencies_come_from_the_model(server):
    with server.client() as c:
        deps = c.get(server.base + "/metadata/data/v3/dependencies").json()
    assert deps == edfi_model.load().dependencies()
    entries = {(d["resource"], tuple(d["operations"])): d["order"] for d in deps}
    assert entries[("/ed-fi/schools", ("Create", "Update"))] > entries[("/ed-fi/localEducationAgencies", ("Create", "Update"))]
    assert entries[("/ed-fi/students", ("Update",))] > entries[("/ed-fi/studentSchoolAssociations", ("Create", "Update"))]
    assert entries[("/ed-fi/gradeLevelDescriptors", ("Create", "Update"))] == 1
    assert all(set(d) == {"resource", "order", "operations"} for d in deps)


def test_year_routes(year_server):
    api = Api(year_server)
    base = year_server.info["base_url"]
    sid = 255700000 + next_id()
    h = api.headers
    with year_server.client() as c:
        assert c.post(f"{base}/data/v3/2027/ed-fi/schools", json=school(sid), headers=h).status_code == 201
        assert len(c.get(f"{base}/data/v3/2027/ed-fi/schools", params={"schoolId": sid}, headers=h).json()) == 1
        assert c.get(f"{base}/data/v3/2026/ed-fi/schools", params={"schoolId": sid}, headers=h).json() == []
        problem(c.get(f"{base}/data/v3/ed-fi/schools", headers=h), 404, "not-found")
        problem(c.get(f"{base}/data/v3/1800/ed-fi/schools", headers=h), 404, "not-found")
        assert c.get(f"{base}/metadata/data/v3/2027/dependencies").status_code == 200
        doc = c.get(base + "/").json()
        assert doc["apiMode"] == "Year Specific"  # as ODS/API 5.x/6.x: the calendar year's URLs
        assert doc["urls"]["dataManagementApi"].startswith(f"{base}/data/v3/20")


def test_tenant_year_routes(start_api, server):
    srv = start_api(routes="tenant-year", tenant="kyschools", school_year=2027)
    base = srv.base.rsplit("/", 2)[0]
    assert srv.base == f"{base}/kyschools/2027" and srv.info["oauth_url"] == f"{base}/kyschools/oauth/token"
    api = Api(srv)
    sid = 255700000 + next_id()
    assert api.post("schools", school(sid)).status_code == 201
    with srv.client() as c:
        doc = c.get(srv.base).json()
        assert doc["urls"]["dataManagementApi"] == f"{base}/kyschools/2027/data/v3/"
        assert c.get(doc["urls"]["dependencies"]).status_code == 200
        problem(c.get(f"{base}/otherdistrict/2027/data/v3/ed-fi/schools", headers=api.headers), 404, "not-found")
        problem(c.post(f"{base}/otherdistrict/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(srv.info["key"], srv.info["secret"])), 404, "not-found")
        assert c.get(f"{base}/kyschools/2026/data/v3/ed-fi/schools", params={"schoolId": sid}, headers=api.headers).json() == []
        problem(c.get(f"{base}/data/v3/ed-fi/schools", headers=api.headers), 404, "not-found")
    # a token is for its tenant only
    shared = Api(server)
    problem(shared.http.get(f"{srv.base}/data/v3/ed-fi/schools", headers=shared.headers), 401, "security:authentication")


def test_data_standard_4_server(start_api, server):
    """`--data-standard 4.0`: DS 4.0 natural keys, required fields and descriptor values, in a store
    of its own."""
    from edfi_helpers import school_with_session

    srv = start_api(data_standard="4.0")
    api = Api(srv)
    with srv.client() as c:
        assert c.get(srv.base + "/").json()["dataModels"][0]["version"] == "4.0.0"
    sid, _ = school_with_session(api)
    gp = {"gradingPeriodDescriptor": "uri://ed-fi.org/GradingPeriodDescriptor#First Semester", "periodSequence": 1,
          "schoolReference": {"schoolId": sid}, "schoolYearTypeReference": {"schoolYear": 2027},
          "beginDate": "2026-08-20", "endDate": "2026-12-20", "totalInstructionalDays": 80}
    assert api.post("gradingPeriods", gp).status_code == 201  # no gradingPeriodName in DS 4.0
    del gp["periodSequence"]
    body = problem(api.post("gradingPeriods", gp), 400, "bad-request:data-validation-failed")
    assert list(body["validationErrors"]) == ["$.periodSequence"]
    problem(api.post("schools", school(3_000_000_000)), 400, "bad-request:data-validation-failed")  # 32-bit ids
    stu = f"F{next_id()}"
    api.created("students", student(stu))
    seoa = {"studentReference": {"studentUniqueId": stu}, "educationOrganizationReference": {"educationOrganizationId": sid},
            "sexDescriptor": "uri://ed-fi.org/SexDescriptor#Female",
            "races": [{"raceDescriptor": "uri://ed-fi.org/RaceDescriptor#Black - African American"}]}
    assert api.post("studentEducationOrganizationAssociations", seoa).status_code == 201
    seoa["races"] = [{"raceDescriptor": "uri://ed-fi.org/RaceDescriptor#Black or African American"}]  # a DS 5 value
    problem(api.post("studentEducationOrganizationAssociations", seoa), 400, "bad-request:data-validation-failed")
    del seoa["sexDescriptor"]
    problem(api.post("studentEducationOrganizationAssociations", seoa), 400, "bad-request:data-validation-failed")
    # its data is its own: the DS 5.2 server of the same database does not see this school
    assert api.get("schools", params={"schoolId": sid}).json()
    assert Api(server).get("schools", params={"schoolId": sid}).json() == []
