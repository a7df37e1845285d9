"""Render the compiled hierarchy into Airflow DAGs (the only module here that imports Airflow).

Shape of every resync DAG:

    start_request ──► district[i] (mapped task group, one per district) ──► finish_request
                         one task per object, wired parent → child from the hierarchy

Inside the group each task depends on the same district's parent tasks only, so one slow or
failing district does not hold the others back; a failed object's descendants in that district
end `upstream_failed` (recorded as not_run). Objects outside the request's plan skip, and
`none_failed` lets their children run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from campus_sync import engine, hierarchy, requests, tasks

GROUP = "district"
DEFAULT_ARGS = {
    "owner": "campus-state-sync",
    "retries": 2,  # connection errors; refused input and engine errors fail at once
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(hours=4),
}


def triggering_user(context) -> str:
    run = context["dag_run"]
    return getattr(run, "triggering_user_name", None) or ("scheduler" if run.run_type != "manual" else "unknown")


def district_param(district_labels: list[str], default: list[str] | None = None) -> Param:
    return Param(
        default if default is not None else [],
        type="array",
        items={"type": "string", "enum": district_labels},
        examples=district_labels,
        title="Districts",
        description="Districts to resync (empty: every configured district).",
    )


def build_resync_dag(dag_id: str, *, kind: str, objects: Iterable[str], params: dict,
                     schedule: str | None, description: str, doc_md: str, tags: list[str],
                     kind_from_params: bool = False) -> DAG:
    """A resync DAG whose object tasks are `objects` (run order), wired by the hierarchy."""
    graph = hierarchy.load()
    names = list(objects)
    present = set(names)

    with DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        # No start_date + run_immediately=False: the first unpause waits for the next slot instead of
        # firing the most recent past one (which catchup=False does whenever a start_date is set).
        schedule=CronTriggerTimetable(schedule, timezone="UTC", run_immediately=False) if schedule else None,
        catchup=False,
        max_active_runs=1,  # two resyncs of one district and object never interleave
        params=params,
        tags=tags,
        default_args=DEFAULT_ARGS,
        render_template_as_native_obj=True,
    ) as dag:

        @task(task_id="start_request", retries=0)
        def start_request() -> list[dict]:
            """Validate the form and record the request; refuse bad input before any write."""
            context = get_current_context()
            params = dict(context["params"])
            run_kind = kind
            if kind_from_params and params.get("requested_by") == "state":
                run_kind = "state_request"
            try:
                return tasks.start_request(params, kind=run_kind, user=params.get("user") or triggering_user(context),
                                           dag_id=context["dag"].dag_id, run_id=context["run_id"])
            except requests.RequestError as exc:
                raise AirflowFailException(f"request refused: {exc}") from None

        @task(trigger_rule="none_failed", multiple_outputs=False)
        def sync_object(name: str, unit: dict):
            if name not in unit["objects"]:
                raise AirflowSkipException(f"{name} is not part of this request")
            try:
                return tasks.run_object(name, unit)
            except engine.SyncError as exc:  # not transient: do not retry
                raise AirflowFailException(str(exc)) from None

        @task_group(group_id=GROUP)
        def district(unit: dict) -> None:
            made = {}
            for name in names:
                made[name] = sync_object.override(task_id=name)(name, unit)
                for parent in graph.parents(name):
                    if parent in present:
                        made[parent] >> made[name]

        @task(task_id="finish_request", trigger_rule="all_done", retries=1, multiple_outputs=False)
        def finish_request(units: list[dict] | None):
            """Write the history rows from every object's XCom and fail the run if any failed."""
            context = get_current_context()
            ti = context["ti"]
            if not units:
                raise AirflowFailException("the request was refused; see start_request")
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_group_id=GROUP)
            states = states.get(ti.run_id, {})
            outcomes = {}
            indexes = list(range(len(units)))
            planned = {n for u in units for n in u["objects"]}
            for name in names:
                if name not in planned:  # skipped in every district: no result (and no XCom to pull)
                    continue
                results = ti.xcom_pull(task_ids=f"{GROUP}.{name}", map_indexes=indexes)
                if not isinstance(results, list):
                    results = [results]
                for i in indexes:
                    state = states.get(f"{GROUP}.{name}_{i}")
                    result = results[i] if i < len(results) else None
                    outcomes[(name, i)] = (state, result)
            summary = tasks.finish_request(units, outcomes)
            if summary["failed"]:
                raise AirflowFailException(f"objects failed: {', '.join(summary['failed'])}")
            return summary

        units = start_request()
        group = district.expand(unit=units)
        units >> group >> finish_request(units)
    return dag
