"""The weekly resync (one task per object, every district inside it) under the real scheduler,
with four districts of which one refuses connections: the other three complete, the history says
which objects of the refusing district failed and which did not run, and the run fails."""

from __future__ import annotations

import socket

import psycopg
import pytest
from live_helpers import LIVE_STUDENTS, LiveAirflow, _fresh_db, start_live

pytestmark = [pytest.mark.airflow, pytest.mark.db, pytest.mark.live]
DAG_ID = "campus_full_resync"
DISTRICTS = ("0101", "0102", "0103", "0104")
REFUSING = "0103"


def q(dsn, sql, params=()):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def scale_airflow(tmp_path_factory, server_dsn, graph):
    from campus_sync import config
    from campus_sync.demo import data as demo
    from campus_sync.engine import schema

    home = tmp_path_factory.mktemp("airflow_scale")
    path = home / "campus_sync.yaml"
    path.write_text("state: KY\ncurrent_school_year: 2027\nembedded_postgres: false\nstate_conn_id: campus_state\n"
                    "full_resync_shape: per_object\ndistricts_in_parallel: 2\nstate_pool_slots: 2\n"
                    "attendance_refresh: false\ndistricts:\n"
                    + "".join(f"  - {{id: '{d}', name: Scale {d}}}\n" for d in DISTRICTS))
    cfg = config.parse(path)
    env = {"CAMPUS_SYNC_CONFIG": str(path)}
    databases = {"state": _fresh_db(server_dsn, "scale_campus_state")}
    with psycopg.connect(databases["state"]) as conn:
        schema.ensure_state_schema(conn, graph)
    env["AIRFLOW_CONN_CAMPUS_STATE"] = databases["state"]
    for i, d in enumerate(cfg.districts):
        if d.id == REFUSING:  # a port nothing listens on: every connection is refused
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                env[f"AIRFLOW_CONN_{d.conn_id.upper()}"] = f"postgresql://nobody@127.0.0.1:{s.getsockname()[1]}/x"
            continue
        databases[d.id] = _fresh_db(server_dsn, f"scale_campus_district_{d.id}")
        env[f"AIRFLOW_CONN_{d.conn_id.upper()}"] = databases[d.id]
        # seeding keeps the district's school names for the Ed-Fi form under CAMPUS_SYNC_HOME: these
        # districts' names must not replace those of the live deployment's district of the same id
        with psycopg.connect(databases[d.id]) as conn, pytest.MonkeyPatch.context() as mp:
            mp.setenv("CAMPUS_SYNC_HOME", str(home / "campus_sync_home"))
            demo.seed_district(conn, graph, d, i, LIVE_STUDENTS, 7, 2027, "KY")
    af, seconds = start_live(home, {"env": env})
    print(f"\nscale_airflow: started in {seconds:.0f} s at {af.base_url}")
    try:
        yield LiveAirflow(base_url=af.base_url, username="admin", password=af.admin_password() or "",
                          home=home, deployment=af, databases=databases, seeded={})
    finally:
        af.stop()


def test_a_refusing_district_fails_alone_under_the_scheduler(scale_airflow, graph):
    live = scale_airflow
    live.wait_dag(DAG_ID)
    live.unpause(DAG_ID)
    r = live.trigger(DAG_ID, {})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = live.wait_run(DAG_ID, run_id, timeout=1200)
    states = live.task_states(DAG_ID, run_id)
    enabled = graph.enabled("KY")
    assert run["state"] == "failed"
    assert states["finish_request"] == "failed"
    assert all(states[n] == "success" for n in enabled), {k: v for k, v in states.items() if v != "success"}
    assert len(states) == len(enabled) + 2  # one task per object, whatever the number of districts

    state = live.databases["state"]
    (batch,) = q(state, "SELECT id, status, details FROM sync.batch WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id))
    res = {(d, o): (s, m) for d, o, s, m in q(
        state, "SELECT district_id, object, status, message FROM sync.batch_result WHERE batch_id = %s", (batch[0],))}
    assert len(res) == len(DISTRICTS) * len(enabled)
    for d in DISTRICTS:
        if d != REFUSING:
            assert all(res[(d, n)][0] in ("green", "yellow", "red") for n in enabled), d
    roots = {n for n in enabled if not graph.spec(n).parents}
    assert {n for n in enabled if res[(REFUSING, n)][0] == "failed"} == roots
    assert all(res[(REFUSING, n)][0] == "not_run" for n in enabled if n not in roots)
    assert res[(REFUSING, "School")][1] == "not run: District failed for this district"
    assert batch[1] == "failed"
    assert sorted(batch[2]["failed"]) == sorted(f"{REFUSING}:{n}" for n in roots)
    persons = dict(q(state, "SELECT district_id, count(*) FROM state.personidentity GROUP BY 1"))
    assert set(persons) == set(DISTRICTS) - {REFUSING}
