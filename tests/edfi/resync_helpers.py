"""Helpers for the Ed-Fi Resync tests: a fresh local Ed-Fi API per test (its own database, a real
process over real HTTP), the configuration's connection pointed at it, and readers of what the
API holds. Importable as `resync_helpers` from tests under tests/edfi/."""

from __future__ import annotations

import json

import httpx
import psycopg

from campus_sync.edfi.api.server import LocalEdFiApi, Options


def start_fresh_api(make_db, tmp_path, name: str = "t_edfi_resync", **options) -> LocalEdFiApi:
    options.setdefault("token_limit", 0)
    api = LocalEdFiApi(Options(port=0, **options), state_dir=tmp_path / f"api-{name}", dsn=make_db(name))
    api.start(timeout=120)
    return api


def point_connection(monkeypatch, api: LocalEdFiApi, conn_id: str = "edfi_demo") -> dict:
    info = api.info()
    conn = {"conn_type": "http", "host": info["base_url"], "login": info["key"], "password": info["secret"],
            "extra": {"route_style": "shared", "api_version": "7.3"}}
    monkeypatch.setenv("AIRFLOW_CONN_" + conn_id.upper(), json.dumps(conn))
    return info


def token(info: dict) -> str:
    r = httpx.post(info["oauth_url"], auth=(info["key"], info["secret"]), data={"grant_type": "client_credentials"},
                   timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def documents(info: dict, resource: str, **params) -> list[dict]:
    """Every document of a resource at the API (paged GET)."""
    headers = {"Authorization": f"Bearer {token(info)}"}
    out: list[dict] = []
    offset = 0
    while True:
        r = httpx.get(f"{info['data_url']}/ed-fi/{resource}", params={"offset": offset, "limit": 500, **params},
                      headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page)
        if len(page) < 500:
            return out
        offset += 500


def seed_edfi(district_dsn: str, district_id: str = "0101") -> dict:
    from campus_sync.edfi import demo_data

    with psycopg.connect(district_dsn) as conn:
        return demo_data.seed(conn, district_id)


def by_resource(summary: dict) -> dict[str, dict]:
    return {r["object"]: r for r in summary["results"]}
