"""The `context-year` route style (ODS/API 7.x with a school-year context and no tenant:
`{host}/{year}/data/v3/ed-fi/...`, token at `{host}/oauth/token`): the connection builds its
routes, the local Ed-Fi API serves them, and a resync sends through them over real HTTP."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest
from resync_helpers import by_resource, seed_edfi, start_fresh_api, token


def test_context_year_connection_routes(monkeypatch):
    from campus_sync.edfi import client

    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", '{"host": "https://ods.example.org/api", "login": "k", "password": "s",'
                                              ' "extra": {"route_style": "context-year", "api_version": "7.3"}}')
    c = client.resolve("edfi_x", 2027)
    assert c.data_url == "https://ods.example.org/api/2027/data/v3"
    assert c.oauth_url == "https://ods.example.org/api/oauth/token"
    assert c.dependencies_url == "https://ods.example.org/api/2027/metadata/data/v3/dependencies"
    # a tenant with context-year routes is a mistake for tenant-year: refused, naming both
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", '{"host": "https://ods.example.org", "login": "k", "password": "s",'
                                              ' "extra": {"route_style": "context-year", "tenant": "t1"}}')
    with pytest.raises(client.EdfiConnectionError, match="context-year takes no tenant.*tenant-year"):
        client.resolve("edfi_x", 2027)
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", '{"host": "https://ods.example.org", "login": "k", "password": "s",'
                                              ' "extra": {"route_style": "contextyear"}}')
    with pytest.raises(client.EdfiConnectionError, match="'contextyear' must be shared, year, context-year or tenant-year"):
        client.resolve("edfi_x", 2027)


@pytest.fixture
def context_api(deployment, make_db, tmp_path, monkeypatch):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path, routes="context-year", school_year=2027)
    info = api.info()
    root = info["oauth_url"].rsplit("/oauth/token", 1)[0]
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_DEMO", json.dumps({
        "conn_type": "http", "host": root, "login": info["key"], "password": info["secret"],
        "extra": {"route_style": "context-year", "api_version": "7.3"}}))
    yield {**deployment, "api": api, "info": info, "root": root}
    api.stop()


def test_local_api_serves_context_year_routes(context_api):
    info, root = context_api["info"], context_api["root"]
    assert info["data_url"] == f"{root}/2027/data/v3" and info["routes"] == "context-year"
    h = {"Authorization": f"Bearer {token(info)}"}
    school = {"schoolId": 255799001, "nameOfInstitution": "Context School",
              "educationOrganizationCategories": [{"educationOrganizationCategoryDescriptor":
                                                   "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#School"}],
              "gradeLevels": [{"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}]}
    with httpx.Client(timeout=30) as c:
        assert c.post(f"{root}/2027/data/v3/ed-fi/schools", json=school, headers=h).status_code == 201
        assert len(c.get(f"{root}/2027/data/v3/ed-fi/schools", params={"schoolId": 255799001}, headers=h).json()) == 1
        # each year is a store of its own; the routes without a year context are not served
        assert c.get(f"{root}/2026/data/v3/ed-fi/schools", params={"schoolId": 255799001}, headers=h).json() == []
        assert c.get(f"{root}/data/v3/ed-fi/schools", headers=h).status_code == 404
        assert c.get(f"{root}/data/v3/2027/ed-fi/schools", headers=h).status_code == 404
        assert c.get(f"{root}/2027/metadata/data/v3/dependencies").status_code == 200
        doc = c.get(f"{root}/2027").json()
        assert doc["urls"]["dataManagementApi"] == f"{root}/2027/data/v3/"
        assert doc["urls"]["oauth"] == f"{root}/oauth/token"


def test_resync_sends_through_context_year_routes(context_api):
    from campus_sync.edfi import resync

    summary = resync.run({"configuration": "demo", "all_schools": True, "resources": ["sessions"]}, user="tester")
    assert summary["status"] == "complete", summary
    results = by_resource(summary)
    assert results["schools"]["inserted"] > 0 and results["sessions"]["inserted"] > 0
    info, root = context_api["info"], context_api["root"]
    h = {"Authorization": f"Bearer {token(info)}"}
    got = httpx.get(f"{root}/2027/data/v3/ed-fi/sessions", params={"limit": 500}, headers=h, timeout=30).json()
    assert len(got) == results["sessions"]["inserted"]
    with psycopg.connect(context_api["state"]) as conn:  # the dependency check read the year's metadata
        check = conn.execute("SELECT details->'dependency_check' FROM sync.batch WHERE id = %s",
                             (summary["batch_id"],)).fetchone()[0]
    assert check == []
