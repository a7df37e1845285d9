"""The live Airflow (same code as `make airflow`): every configured login works with its role, and
the project's manual DAGs were created unpaused while the weekly one was created paused."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.live, pytest.mark.db]

MANUAL = ("campus_partial_resync", "campus_selective_sync", "campus_verification_summary")
WEEKLY = "campus_full_resync"


def test_manual_dags_are_created_unpaused_and_the_weekly_one_paused(live_airflow):
    with live_airflow.client() as c:
        for dag_id in (*MANUAL, WEEKLY):
            live_airflow.wait_dag(dag_id)
            details = c.get(f"/api/v2/dags/{dag_id}/details").json()
            assert details["is_paused_upon_creation"] is (None if dag_id == WEEKLY else False), details
        for dag_id in MANUAL:
            assert c.get(f"/api/v2/dags/{dag_id}").json()["is_paused"] is False


def test_every_login_the_summary_prints_works_with_its_role(live_airflow):
    af = live_airflow.deployment
    logins = {user: (role, password) for user, role, password in af.logins()}
    assert logins["viewer"][0] == "viewer" and logins["viewer"][1]
    assert f"viewer (viewer) / {logins['viewer'][1]}" in af.summary()
    assert {role for role, _ in logins.values()} >= {"admin", "viewer"}
    for user, (role, password) in logins.items():
        token = live_airflow.token(user, password)
        with live_airflow.client(token) as c:
            dag = c.get(f"/api/v2/dags/{WEEKLY}")
            assert dag.status_code == 200, (user, dag.text)
            # writing back the same pause flag: a viewer may not, every other role may (no change made)
            r = c.patch(f"/api/v2/dags/{WEEKLY}", params={"update_mask": "is_paused"},
                        json={"is_paused": dag.json()["is_paused"]})
            assert r.status_code == (403 if role == "viewer" else 200), (user, role, r.text)
    r = httpx.post(f"{live_airflow.base_url}/auth/token", json={"username": "viewer", "password": "wrong"})
    assert r.status_code in (401, 403)
