"""The page's FastAPI app in-process, authenticated by Airflow's own simple auth manager.

`page_client(user)` is a TestClient over `campus_sync.web.app.create_app()` sending a real JWT
minted by the auth manager for `user` (role = user name: viewer, user, op, admin), so every
route runs its real rights checks against the session's migrated Airflow metadata database, and
its queries against the `deployment` state database. Triggers (Airflow's REST API) are covered
by tests/live.
"""

from __future__ import annotations

import pytest

USERS = "admin:admin,viewer:viewer,user:user,op:op"


@pytest.fixture
def page_client(deployment, airflow_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    from fastapi.testclient import TestClient

    from airflow.api_fastapi import app as airflow_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from campus_sync.web import app as web_app

    manager = airflow_app.init_auth_manager()
    client = TestClient(web_app.create_app(), raise_server_exceptions=False)

    def as_user(name: str) -> TestClient:
        token = manager.generate_jwt(SimpleAuthManagerUser(username=name, role=name))
        client.headers.update({"Authorization": f"Bearer {token}", "X-Campus-Sync": "1"})
        return client

    return as_user
