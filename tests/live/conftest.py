"""`live_airflow`: one real Airflow per test session, started by the same code as `make airflow`.

The components (api-server, scheduler, dag-processor, triggerer; LocalExecutor) run in a temp
AIRFLOW_HOME on free loopback ports, with the metadata in its own database (`live_meta_<home>`) on the
session's embedded PostgreSQL and the session's test configuration. The state and the districts
are fresh databases on the same server, handed to every component as `AIRFLOW_CONN_*` like a
production deployment; district 0101 is seeded with a small demo (`seeded`), 0102 is empty.
Configuration `demo`'s Ed-Fi connection names a local Ed-Fi API on a port chosen here (`edfi`);
`live_edfi_api` starts that API the first time a test asks for it.

Tests under tests/live/ get it directly; helpers (`LiveAirflow`, `start_live`) are in
live_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import page_helpers
from live_helpers import LIVE_STUDENTS, LiveAirflow, _fresh_db, start_live


@pytest.fixture(scope="session")
def live_deployment(server_dsn, graph) -> dict:
    """Fresh state + districts for the live Airflow (prefix `live_`); 0101 seeded small."""
    import psycopg

    from campus_sync import config
    from campus_sync.demo import data as demo
    from campus_sync.engine import schema

    cfg = config.load()
    out: dict = {"databases": {}, "seeded": {}, "env": {}}
    out["databases"]["state"] = _fresh_db(server_dsn, "live_campus_state")
    with psycopg.connect(out["databases"]["state"]) as conn:
        schema.ensure_state_schema(conn, graph)
    out["env"][f"AIRFLOW_CONN_{cfg.state_conn_id.upper()}"] = out["databases"]["state"]
    out["env"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = page_helpers.USERS  # the page's rights tests
    for i, d in enumerate(cfg.districts):
        dsn = _fresh_db(server_dsn, f"live_campus_district_{d.id}")
        out["databases"][d.id] = dsn
        out["env"][f"AIRFLOW_CONN_{d.conn_id.upper()}"] = dsn
        if i == 0:
            with psycopg.connect(dsn) as conn:
                out["seeded"][d.id] = demo.seed_district(conn, graph, d, i, LIVE_STUDENTS, 7, cfg.end_year(), cfg.state)
    out["edfi"] = _edfi_api_settings(server_dsn, out["env"])
    return out


def _edfi_api_settings(server_dsn: str, env: dict) -> dict:
    """Configuration `demo`'s local Ed-Fi API: a port, key and secret fixed before Airflow starts
    (every component reads the connection from its environment, as in production) and a fresh
    database for its documents. The API itself starts later, in `live_edfi_api`."""
    import json
    import secrets

    from campus_sync import config
    from campus_sync.edfi import request as edfi_request
    from campus_sync.orchestration.local_airflow import free_port

    conf = edfi_request.configuration("demo")
    api = {"configuration": conf.name, "port": free_port(), "key": "live-campus-sync",
           "secret": secrets.token_urlsafe(24), "dsn": _fresh_db(server_dsn, "live_edfi_api")}
    env[config.connection_env_var(conf.conn_id)] = json.dumps({
        "conn_type": "http", "host": f"http://127.0.0.1:{api['port']}", "login": api["key"],
        "password": api["secret"], "extra": {"route_style": "shared", "api_version": "7.3"}})
    return api


@pytest.fixture(scope="session")
def live_airflow(tmp_path_factory, live_deployment) -> Iterator[LiveAirflow]:
    """A running Airflow (LocalExecutor) for the session; stopped (whole process groups) at the end."""
    home = tmp_path_factory.mktemp("airflow_local")
    af, seconds = start_live(home, live_deployment)
    print(f"\nlive_airflow: started in {seconds:.0f} s at {af.base_url}")
    try:
        yield LiveAirflow(base_url=af.base_url, username="admin", password=af.admin_password() or "",
                          home=home, deployment=af, databases=live_deployment["databases"],
                          seeded=live_deployment["seeded"])
    finally:
        af.stop()


@pytest.fixture(scope="session")
def live_edfi_api(live_deployment, tmp_path_factory) -> Iterator[dict]:
    """The local Ed-Fi API the live Airflow's `demo` connection names (real process, real HTTP),
    started on first use and stopped at the end of the session; its info (URLs, key, secret)."""
    from campus_sync.edfi.api.server import LocalEdFiApi, Options

    e = live_deployment["edfi"]
    api = LocalEdFiApi(Options(port=e["port"]), state_dir=tmp_path_factory.mktemp("live_edfi_api"), dsn=e["dsn"],
                       key=e["key"], secret=e["secret"])
    info, _ = api.start(timeout=120)
    try:
        yield info
    finally:
        api.stop()


@pytest.fixture(scope="session")
def page_airflow(live_airflow) -> page_helpers.PageAirflow:
    """The live Airflow for the Resync State Data page's tests, after the demo: every campus DAG
    unpaused and district 0101's full resync done once (reused when an earlier test ran it)."""
    import json

    import psycopg

    live = page_helpers.PageAirflow(url=live_airflow.base_url,
                                    passwords=json.loads(live_airflow.deployment.password_file.read_text()),
                                    state_dsn=live_airflow.databases["state"])
    for dag_id in ("campus_full_resync", "campus_partial_resync", "campus_selective_sync",
                   "campus_verification_summary"):
        live_airflow.wait_dag(dag_id)
        live_airflow.unpause(dag_id)
    with psycopg.connect(live.state_dsn) as conn:
        done = conn.execute("SELECT count(*) FROM sync.batch WHERE kind = 'full' AND status = 'complete'"
                            " AND %s = ANY(districts)", (live.district,)).fetchone()[0]
    if not done:
        r = live_airflow.trigger("campus_full_resync", {"districts": [live.district]})
        assert r.status_code == 200, r.text
        run = live_airflow.wait_run("campus_full_resync", r.json()["dag_run_id"], timeout=1200)
        assert run["state"] == "success", run
    return live
