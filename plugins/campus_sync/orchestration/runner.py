"""Run a DAG of the package once, end to end, with `dag.test()` (make demo / make dag / tests).

Airflow reads its configuration at import, so `prepare()` sets the environment first: a
metadata DB on SQLite under `$CAMPUS_SYNC_HOME/airflow` (migrated once), the project's dags and
plugins folders, no examples. Connections still resolve through `campus_sync.db`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from campus_sync import db, paths


@dataclass
class RunOutcome:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)  # "group.task[i]" -> state
    labels: dict[str, str] = field(default_factory=dict)  # "group.task[i]" -> rendered map index

    @property
    def ok(self) -> bool:
        return self.state == "success"


def prepare(airflow_home: Path | None = None) -> Path:
    """Point Airflow at a local home (idempotent) and migrate its metadata DB when new."""
    home = airflow_home or Path(os.environ.get("AIRFLOW_HOME") or db.home() / "airflow")
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    }
    for k, v in env.items():
        os.environ.setdefault(k, v)
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    marker = home / ".migrated"
    if not marker.exists():
        from airflow.utils import db as airflow_db

        airflow_db.resetdb(skip_init=False)
        marker.touch()
    return home


@contextmanager
def owner_session() -> Iterator[None]:
    """Keep one session open on the state database while this process runs a DAG, and let the
    batches it records name that session as their owner: when the process dies, the session
    ends and the next request (or `campus-sync history`) closes them as abandoned."""
    import psycopg

    from campus_sync import config
    from campus_sync.tools import liveness

    cfg = config.load()
    conn = psycopg.connect(db.dsn(cfg.state_conn_id, "the state database"), autocommit=True)
    previous = os.environ.get(liveness.OWNER_ENV)
    os.environ[liveness.OWNER_ENV] = json.dumps(liveness.process_owner(conn))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(liveness.OWNER_ENV, None)
        else:
            os.environ[liveness.OWNER_ENV] = previous
        conn.close()


@contextmanager
def _task_context_restored() -> Iterator[None]:
    """Airflow exports each task's context (AIRFLOW_CTX_DAG_ID, ..._TASK_ID, ...) into the process
    environment while `dag.test()` runs it and leaves the last task's there. The process goes on
    (`make demo` runs the Ed-Fi Resync next): put the environment back as it was, so its later
    connections do not name themselves after that task (`db.application_name`)."""
    before = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CTX_")}
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("AIRFLOW_CTX_") and k not in before]:
            del os.environ[key]
        os.environ.update(before)


def _quiet_upstream_warnings() -> None:
    """Keep two harmless deprecation warnings of Airflow 3.3's own dependencies out of the demo's
    output: pathspec 1.x deprecates the class Airflow's .airflowignore matcher uses, and
    dag.test's in-process API client uses starlette's TestClient over httpx. Set after Airflow is
    imported, since Airflow installs warning filters of its own in front of earlier ones."""
    import airflow  # noqa: F401 - its filters first, ours in front of them

    warnings.filterwarnings("ignore", message=r"GitWildMatchPattern")
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")


def get_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError("DAG import errors:\n" + "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items()))
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"unknown DAG {dag_id!r}; known: {', '.join(sorted(bag.dag_ids))}")
    return dag


def run_dag(dag_id: str, conf: dict | None = None) -> RunOutcome:
    """dag.test() the DAG with `conf`; param validation errors propagate (trigger-time refusal)."""
    prepare()
    _quiet_upstream_warnings()
    dag = get_dag(dag_id)
    with owner_session(), _task_context_restored():
        run = dag.test(run_conf=conf or {})
    from airflow.utils.session import create_session

    states: dict[str, str] = {}
    labels: dict[str, str] = {}
    with create_session() as session:
        for ti in run.get_task_instances(session=session):
            name = ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else "")
            states[name] = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
            if ti.rendered_map_index:
                labels[name] = ti.rendered_map_index
    state = run.state.value if hasattr(run.state, "value") else str(run.state)
    return RunOutcome(dag_id=dag_id, run_id=run.run_id, state=state, task_states=states, labels=labels)
