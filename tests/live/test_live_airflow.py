"""A real Airflow (same code as `make airflow`): REST trigger → scheduler → LocalExecutor → state.

Slow by nature (components start once per session, ~1-2 min on 2 cores); marked `live`.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

pytestmark = [pytest.mark.live, pytest.mark.db]

DAG_ID = "campus_full_resync"


def q(dsn: str, sql: str, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_components_run_on_the_embedded_postgres(live_airflow):
    af = live_airflow.deployment
    assert all(af.pids().values()), af.pids()
    health = af.health()
    assert {health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {"healthy"}
    env = af.environment()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{af.port}/execution/"
    # a wrong password gets no token
    import httpx

    r = httpx.post(f"{live_airflow.base_url}/auth/token", json={"username": "admin", "password": "wrong"})
    assert r.status_code in (401, 403)


def test_unpausing_the_weekly_dag_waits_for_the_next_slot(live_airflow):
    dag = live_airflow.wait_dag(DAG_ID)
    assert dag["is_paused"] is True
    next_run = dt.datetime.fromisoformat(dag["next_dagrun_run_after"].replace("Z", "+00:00"))
    now = dt.datetime.now(dt.timezone.utc)
    assert now < next_run <= now + dt.timedelta(days=7)
    live_airflow.unpause(DAG_ID)
    with live_airflow.client() as c:
        runs = c.get(f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
    assert [r for r in runs if r["run_type"] == "scheduled"] == []


def test_bad_conf_is_refused_with_400_and_no_history(live_airflow):
    state = live_airflow.databases["state"]
    live_airflow.wait_dag(DAG_ID)
    before = q(state, "SELECT count(*) FROM sync.batch")
    r = live_airflow.trigger(DAG_ID, {"districts": ["9999"]})
    assert r.status_code == 400, r.text
    assert "9999" in r.text
    assert q(state, "SELECT count(*) FROM sync.batch") == before
    with live_airflow.client() as c:
        runs = c.get(f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
    assert all(r["conf"] != {"districts": ["9999"]} for r in runs)


def test_trigger_form_lists_districts_by_label(live_airflow):
    """What the API server hands the trigger form: districts labelled, ids as the values."""
    live_airflow.wait_dag(DAG_ID)
    with live_airflow.client() as c:
        r = c.get(f"/api/v2/dags/{DAG_ID}/details")
    r.raise_for_status()
    schema = r.json()["params"]["districts"]["schema"]
    assert schema["values_display"] == {"0101": "0101 Abbott Independent", "0102": "0102 Campus County Public Schools"}
    assert schema["examples"] == schema["items"]["enum"] == ["0101", "0102"]


def test_full_resync_of_one_district_through_rest(live_airflow, graph):
    state = live_airflow.databases["state"]
    seeded = live_airflow.seeded["0101"]
    live_airflow.wait_dag(DAG_ID)
    live_airflow.unpause(DAG_ID)
    r = live_airflow.trigger(DAG_ID, {"districts": ["0101"]})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = live_airflow.wait_run(DAG_ID, run_id)
    states = live_airflow.task_states(DAG_ID, run_id)
    assert run["state"] == "success", {k: v for k, v in states.items() if v != "success"}
    enabled = graph.enabled("KY")
    assert all(states[n] == "success" for n in enabled)  # one task per object (full_resync_shape: per_object)

    # state rows: district 0101 only, the demo's persons all there
    assert q(state, "SELECT DISTINCT district_id FROM state.personidentity") == [("0101",)]
    assert q(state, "SELECT count(*) FROM state.personidentity")[0][0] == seeded["PersonIdentity"]
    assert q(state, "SELECT count(*) FROM state.enrollment WHERE stateexclude") == [(0,)]

    # history: the batch of this run, complete, one result per object
    (batch,) = q(state, "SELECT id, kind, status, districts, completed_at IS NOT NULL, requested_by FROM sync.batch "
                        "WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id))
    assert batch[1:5] == ("full", "complete", ["0101"], True)
    assert batch[5] == "admin"  # the REST caller, not the scheduler
    res = dict(q(state, "SELECT object, processed FROM sync.batch_result WHERE batch_id = %s", (batch[0],)))
    assert set(res) == set(enabled)
    assert res["District"] == 1
