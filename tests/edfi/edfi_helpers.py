"""Helpers for the local Ed-Fi API tests: a started server (real process, real HTTP) and small
document builders. Importable as `edfi_helpers` from tests under tests/edfi/."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx

from campus_sync.edfi.api.server import LocalEdFiApi

_ids = itertools.count(1)

SCHOOL_CATEGORY = "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#School"
NINTH = "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"


def next_id() -> int:
    """A number no other test of the session uses (tests share one database)."""
    return next(_ids)


@dataclass
class Server:
    api: LocalEdFiApi
    info: dict

    @property
    def base(self) -> str:
        return self.info["base_url"]

    @property
    def data(self) -> str:
        return self.info["data_url"] + "/ed-fi"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(timeout=kwargs.pop("timeout", 30), **kwargs)

    def token(self, client: httpx.Client | None = None) -> str:
        c = client or self.client()
        r = c.post(self.info["oauth_url"], auth=(self.info["key"], self.info["secret"]),
                   data={"grant_type": "client_credentials"})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


class Api:
    """An authenticated client of one server: `api.post("schools", {...})`."""

    def __init__(self, server: Server, token: str | None = None):
        self.server = server
        self.http = server.client()
        self.token = token or server.token(self.http)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, resource: str, item: str | None = None) -> str:
        return f"{self.server.data}/{resource}" + (f"/{item}" if item else "")

    def post(self, resource: str, body, **kw) -> httpx.Response:
        return self.http.post(self.url(resource), json=body, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, resource: str, item: str, body, **kw) -> httpx.Response:
        return self.http.put(self.url(resource, item), json=body, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def get(self, resource: str, item: str | None = None, **kw) -> httpx.Response:
        return self.http.get(self.url(resource, item), headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, resource: str, item: str, **kw) -> httpx.Response:
        return self.http.delete(self.url(resource, item), headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def created(self, resource: str, body) -> str:
        """POST that must create; the new id (from Location)."""
        r = self.post(resource, body)
        assert r.status_code == 201, r.text
        return r.headers["location"].rsplit("/", 1)[1]


# ---------------------------------------------------------------------- documents
def school(school_id: int, **extra) -> dict:
    return {"schoolId": school_id, "nameOfInstitution": f"School {school_id}",
            "educationOrganizationCategories": [{"educationOrganizationCategoryDescriptor": SCHOOL_CATEGORY}],
            "gradeLevels": [{"gradeLevelDescriptor": NINTH}], **extra}


def student(unique_id: str, **extra) -> dict:
    return {"studentUniqueId": unique_id, "firstName": "Ada", "lastSurname": "Lovelace", "birthDate": "2010-12-10", **extra}


def session(school_id: int, year: int = 2027, name: str = "Fall") -> dict:
    return {"schoolReference": {"schoolId": school_id}, "schoolYearTypeReference": {"schoolYear": year},
            "sessionName": name, "beginDate": f"{year - 1}-08-20", "endDate": f"{year - 1}-12-20",
            "termDescriptor": "uri://ed-fi.org/TermDescriptor#Fall Semester", "totalInstructionalDays": 80}


def ssa(unique_id: str, school_id: int, entry: str = "2026-08-20", **extra) -> dict:
    return {"studentReference": {"studentUniqueId": unique_id}, "schoolReference": {"schoolId": school_id},
            "entryDate": entry, "entryGradeLevelDescriptor": NINTH, **extra}


def school_with_session(api: Api, name: str = "Fall") -> tuple[int, str]:
    """A new school with a 2027 session; (schoolId, session id)."""
    sid = 255900000 + next_id()
    api.created("schools", school(sid))
    return sid, api.created("sessions", session(sid, name=name))


def problem(r: httpx.Response, status: int, type_suffix: str) -> dict:
    """Assert an Ed-Fi problem+json refusal and return its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["type"] == "urn:ed-fi:api:" + type_suffix, body
    assert body["status"] == status and body["title"] and body["detail"] and body["correlationId"], body
    return body
