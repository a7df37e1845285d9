"""The cluster policy of the local Airflow (`make airflow`): this project's manual DAGs are
created unpaused, the scheduled ones (the weekly full resync) paused.

`LocalAirflow.start` writes `$AIRFLOW_HOME/config/airflow_local_settings.py` importing `dag_policy`
from here, so only that deployment gets it (not docker compose, not a production Airflow that
mounts plugins/). Airflow applies `is_paused_upon_creation` once, when the DAG first appears in
the metadata database: a DAG paused later by a user stays paused across restarts, and a DAG that
sets the flag itself keeps its own choice. Imported by every Airflow process of that deployment at
start-up: nothing here imports more than the standard library.
"""

from __future__ import annotations

from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[3] / "dags"
# Runs a user or an event starts (the Ed-Fi person events' Asset): paused, they would wait forever.
EVENT_OR_MANUAL = ("NullTimetable", "AssetTriggeredTimetable")


def dag_policy(dag) -> None:
    """Manual and event-triggered DAGs of this project's dags/ start unpaused; nothing else changes."""
    if dag.is_paused_upon_creation is not None or type(dag.timetable).__name__ not in EVENT_OR_MANUAL:
        return
    try:
        inside = Path(dag.fileloc).resolve().is_relative_to(DAGS_FOLDER)
    except (TypeError, ValueError, OSError):
        return
    if inside:
        dag.is_paused_upon_creation = False
