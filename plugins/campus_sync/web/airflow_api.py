"""Call Airflow's public REST API (`/api/v2`) as the signed-in user.

The page never triggers a DAG with its own authority: it forwards the credential the user's
request carried (the `Authorization: Bearer` token, else the `_token` session cookie) to Airflow's
own `POST /api/v2/dags/{dag_id}/dagRuns`, so Airflow checks the user's rights again, validates
the params (HTTP 400 on a bad form) and records the user as the run's triggering user.

Inside the api-server the call goes in-process through the same ASGI app (every middleware and
auth check included, no network, no base URL to configure); elsewhere it goes over HTTP to
`[api] base_url`.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
from fastapi import Request

from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser


class AirflowApiError(RuntimeError):
    def __init__(self, status_code: int, detail: Any):
        super().__init__(f"Airflow API answered {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def user_token(request: Request) -> str | None:
    """The credential this request authenticated with (same precedence as Airflow's get_user)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth.split(" ", 1)[1].strip()
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


def _root_app():
    main = sys.modules.get("airflow.api_fastapi.main")
    return getattr(main, "app", None)


def _prefix() -> str:
    from airflow.api_fastapi.app import API_ROOT_PATH

    return API_ROOT_PATH.rstrip("/")


async def call(method: str, path: str, *, token: str | None, user: BaseUser | None = None,
               json: Any = None) -> Any:
    """`method` `/api/v2{path}` as the user; returns the decoded JSON or raises AirflowApiError.

    When the forwarded token has expired meanwhile (401) and the user was authenticated by this
    request, a fresh token for that same user is minted by the auth manager (what Airflow's own
    JWT refresh middleware does) and the call is made once more.
    """
    app = _root_app()
    if app is not None:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://airflow-api",
                                   timeout=60)
        url = f"{_prefix()}/api/v2{path}"
    else:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or f"http://127.0.0.1:{conf.get('api', 'port')}"
        client = httpx.AsyncClient(base_url=base.rstrip("/"), timeout=60)
        url = f"/api/v2{path}"
    async with client:
        tokens = [token] if token else []
        if user is not None:
            tokens.append(None)  # minted on demand below
        resp = None
        for tok in tokens:
            if tok is None:
                from airflow.api_fastapi.app import get_auth_manager

                tok = get_auth_manager().generate_jwt(user)
            resp = await client.request(method, url, json=json, headers={"Authorization": f"Bearer {tok}"})
            if resp.status_code != 401:
                break
    if resp is None:
        raise AirflowApiError(401, "Not authenticated")
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    if resp.status_code >= 400:
        detail = body.get("detail", body) if isinstance(body, dict) else body
        raise AirflowApiError(resp.status_code, detail)
    return body


async def trigger(dag_id: str, conf: dict, *, token: str | None, user: BaseUser | None, note: str | None = None) -> dict:
    """Create a run of `dag_id` with `conf`, as the user."""
    body: dict[str, Any] = {"logical_date": None, "conf": conf}
    if note:
        body["note"] = note
    return await call("POST", f"/dags/{dag_id}/dagRuns", token=token, user=user, json=body)


async def dag_run(dag_id: str, run_id: str, *, token: str | None, user: BaseUser | None) -> dict:
    from urllib.parse import quote

    return await call("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", token=token, user=user)


async def dag(dag_id: str, *, token: str | None, user: BaseUser | None) -> dict:
    """The DAG as Airflow's scheduler sees it (is_paused, max_active_runs, ...)."""
    return await call("GET", f"/dags/{dag_id}", token=token, user=user)


async def unpause(dag_id: str, *, token: str | None, user: BaseUser | None) -> dict:
    """Unpause `dag_id` as the user (Airflow checks the user's edit right on the DAG)."""
    return await call("PATCH", f"/dags/{dag_id}?update_mask=is_paused", token=token, user=user,
                      json={"is_paused": False})


async def runs(dag_id: str, states: tuple[str, ...], *, token: str | None, user: BaseUser | None,
               limit: int = 20) -> dict:
    """Runs of `dag_id` in `states`, oldest first ({"dag_runs": [...], "total_entries": n})."""
    query = "&".join(f"state={s}" for s in states)
    return await call("GET", f"/dags/{dag_id}/dagRuns?{query}&order_by=id&limit={int(limit)}",
                      token=token, user=user)


async def health(*, token: str | None, user: BaseUser | None) -> dict:
    """Airflow's health report (the scheduler's status and last heartbeat)."""
    return await call("GET", "/monitor/health", token=token, user=user)
