"""Helpers for the Run Clean-up Logic tests: a Tennessee configuration and documents posted straight
to the local Ed-Fi API (unknown to our send log). Importable as `cleanup_helpers` from tests under
tests/edfi/ (and by path from tests/dags/)."""

from __future__ import annotations

import copy
import os

import httpx
import psycopg
from resync_helpers import documents, token


def tennessee_config(tmp_path, monkeypatch) -> None:
    """The test deployment with configuration `demo` (district 0101) in Tennessee."""
    text = open(os.environ["CAMPUS_SYNC_CONFIG"], encoding="utf-8").read()
    assert "conn_id: edfi_demo, state: KY" in text
    path = tmp_path / "campus_sync_tn.yaml"
    path.write_text(text.replace("conn_id: edfi_demo, state: KY", "conn_id: edfi_demo, state: TN"))
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(path))


def schools(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT schoolid FROM campus.school ORDER BY schoolid")]


def bare(doc: dict) -> dict:
    """A document as a client posts it (without the API's id, _etag and _lastModifiedDate)."""
    return {k: copy.deepcopy(v) for k, v in doc.items() if k != "id" and not k.startswith("_")}


def post(info: dict, resource: str, doc: dict) -> str:
    """POST straight to the API (as the real-time path would, unknown to our send log); the new id."""
    r = httpx.post(f"{info['data_url']}/ed-fi/{resource}", json=doc, timeout=30,
                   headers={"Authorization": f"Bearer {token(info)}"})
    assert r.status_code == 201, r.text
    return r.headers["location"].rsplit("/", 1)[1]


def ids(info: dict, resource: str) -> set[str]:
    return {d["id"] for d in documents(info, resource)}


def ods_only_section(info: dict, school: int, identifier: str) -> tuple[str, str]:
    """A section of `school` and a student's association to it, posted straight to the API
    (copies of documents Campus sent, under a section identifier Campus does not have)."""
    section = bare(next(d for d in documents(info, "sections") if d["courseOfferingReference"]["schoolId"] == school))
    section["sectionIdentifier"] = identifier
    assoc = bare(next(d for d in documents(info, "studentSectionAssociations")
                      if d["sectionReference"]["schoolId"] == school))
    for field in ("localCourseCode", "schoolId", "schoolYear", "sessionName"):
        assoc["sectionReference"][field] = section["courseOfferingReference"][field]
    assoc["sectionReference"]["sectionIdentifier"] = identifier
    return post(info, "sections", section), post(info, "studentSectionAssociations", assoc)
