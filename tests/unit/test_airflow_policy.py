"""`make airflow` creates this project's manual DAGs unpaused and the weekly one paused, through
an Airflow cluster policy in its own AIRFLOW_HOME (no other deployment gets it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from campus_sync import paths
from campus_sync.orchestration.local_airflow import LocalAirflow
from campus_sync.orchestration.airflow_policy import dag_policy


def _dag(dag_id: str, schedule, fileloc, **kwargs):
    from airflow.sdk import DAG

    dag = DAG(dag_id, schedule=schedule, **kwargs)
    dag.fileloc = str(fileloc)
    return dag


def test_only_manual_dags_of_this_project_start_unpaused(tmp_path):
    ours = paths.PROJECT_ROOT / "dags" / "campus_x.py"
    manual = _dag("manual", None, ours)
    weekly = _dag("weekly", "0 2 * * 0", ours)
    elsewhere = _dag("elsewhere", None, tmp_path / "dags" / "other.py")
    explicit = _dag("explicit", None, ours, is_paused_upon_creation=True)
    for dag in (manual, weekly, elsewhere, explicit):
        dag_policy(dag)
    assert manual.is_paused_upon_creation is False
    assert weekly.is_paused_upon_creation is None  # Airflow's default: paused at creation
    assert elsewhere.is_paused_upon_creation is None
    assert explicit.is_paused_upon_creation is True


PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={folder!r})
assert not bag.import_errors, bag.import_errors
print(json.dumps({{d.dag_id: d.is_paused_upon_creation for d in bag.dags.values()}}))
"""


def test_airflow_applies_it_in_the_local_deployments_home_only(tmp_path):
    """Airflow's own DagBag, as the dag-processor runs it, with and without the deployment's home."""
    af = LocalAirflow(home=tmp_path / "af")
    af.write_local_settings()
    folder = str(paths.PROJECT_ROOT / "dags")

    def parse(home) -> dict:
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": folder}
        proc = subprocess.run([sys.executable, "-c", PROBE.format(folder=folder)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    flags = parse(af.home)
    assert flags.pop("campus_full_resync") is None  # scheduled weekly: paused at creation
    assert flags and set(flags.values()) == {False}, flags
    assert {"campus_partial_resync", "campus_selective_sync", "campus_verification_summary"} <= set(flags)
    # another AIRFLOW_HOME (a production Airflow mounting plugins/) is untouched
    other = tmp_path / "other"
    other.mkdir()
    assert set(parse(other).values()) == {None}


def test_a_users_own_local_settings_are_kept(tmp_path):
    af = LocalAirflow(home=tmp_path)
    mine = tmp_path / "config" / "airflow_local_settings.py"
    mine.parent.mkdir()
    mine.write_text("def task_policy(task):\n    pass\n")
    af.write_local_settings()
    assert mine.read_text() == "def task_policy(task):\n    pass\n"
