"""Render the compiled hierarchy into Airflow DAGs (the only module here that imports Airflow).

Shape of every resync DAG:

    start_request ──► district[i] (mapped task group, one per district) ──► finish_request
          │              one task per object, wired parent → child from the hierarchy
          └────────────► every object task (so it can skip the objects outside the plan)

finish_request (`all_done`) is downstream of *every* task of the group, not only its leaves: a
partial resync has the scheduler skip the unplanned objects at once, leaves included, so with
leaf edges only the request would close (and the run succeed) while planned objects were still
queued. It is the run's only leaf, so the run fails exactly when it does (an object failed).

Inside the group each task depends on the same district's parent tasks (and the ancestors whose
keys it carries) only, so one slow or failing district does not hold the others back; a failed object's descendants in that district
end `upstream_failed` (recorded as not_run).

Objects outside the request's plan are skipped by the scheduler, without starting a worker
process: `start_request` is a skip-capable task (like `@task.short_circuit`) that stores the
unplanned object tasks under SkipMixin's XCom key, and Airflow's `NotPreviouslySkippedDep`
marks them skipped when it evaluates them (before they are even expanded per district). The
plan is the same for every district, so one decision covers the whole run. Their children in
the plan still run (`none_failed`). A branch *inside* the mapped group would be per district
but does not work in Airflow 3.3 (apache/airflow#67265), hence the decision outside it.

Parse cost: a task re-parses its DAG file, so this module imports nothing heavy at import time
(no psycopg, no engine): the task bodies import `campus_sync.orchestration.tasks` when they run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task, task_group
from airflow.sdk.bases.decorator import task_decorator_factory
from airflow.sdk.bases.skipmixin import XCOM_SKIPMIXIN_KEY, XCOM_SKIPMIXIN_SKIPPED
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from campus_sync import config, hierarchy
from campus_sync.orchestration.refusals import checked_request, finish_unstarted
from campus_sync.tools import attendance

GROUP = "district"
DEFAULT_ARGS = {
    "owner": "campus-state-sync",
    # A lost or refused connection: retried. Refused input, data errors and the engine's refusals
    # fail at once. (The per_object shape retries a district's connection inside its task first.)
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(hours=4),
}
# start_request/finish_request are idempotent (one batch per DAG run, upserted result rows), so
# they retry transient failures (e.g. a slow first execution-API call after Airflow starts) soon.
BOOKKEEPING_ARGS = {
    "retries": 3,
    "retry_delay": dt.timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=2),
}
# Mapped instances are labelled "0101 Abbott Independent" in the grid and logs instead of 0, 1, 2.
# The task sets the variable first thing; `default` keeps a label problem from failing a sync.
MAP_INDEX_TEMPLATE = "{{ district_label | default('') }}"


class _SkippingOperator(_PythonDecoratedOperator):
    """A `@task` allowed to tell the scheduler to skip some of its direct downstream tasks.

    The callable pushes `{"skipped": [task ids]}` under SkipMixin's XCom key; Airflow's
    NotPreviouslySkippedDep reads it for operators flagged `inherits_from_skipmixin` (the flag
    is serialized, so the scheduler sees it) and sets those tasks to skipped itself.
    """

    inherits_from_skipmixin = True  # noqa: the serialized `_can_skip_downstream` flag


def skipping_task(python_callable=None, **kwargs):
    """`@task` whose callable may skip direct downstream tasks via `skip_downstream`."""
    return task_decorator_factory(python_callable=python_callable, multiple_outputs=False,
                                  decorated_operator_class=_SkippingOperator, **kwargs)


def skip_downstream(context, task_ids: Iterable[str]) -> None:
    """Have the scheduler skip these direct downstream tasks (every map index) without a worker."""
    context["ti"].xcom_push(key=XCOM_SKIPMIXIN_KEY, value={XCOM_SKIPMIXIN_SKIPPED: sorted(task_ids)})


def triggering_user(context, params: dict | None = None) -> str:
    """Who asked: Airflow's triggering user; else the conf's `user` (dag.test, the CLI); else
    the scheduler for scheduled runs."""
    run = context["dag_run"]
    airflow_user = getattr(run, "triggering_user_name", None)
    conf_user = (params or {}).get("user")
    if airflow_user == "dag_test" and conf_user:  # dag.test()'s placeholder: the CLI names the user
        return str(conf_user)
    return airflow_user or conf_user or ("scheduler" if run.run_type != "manual" else "unknown")


def confirm_deletes_param() -> Param:
    return Param(
        False, type="boolean", title="Confirm deletes",
        description="Allow this run to delete more than the configured share of an object's state rows "
                    "for a district, or every row when a district now sends none (both refused otherwise).",
    )


def district_param(districts: Iterable[config.District], default: list[str] | None = None) -> Param:
    """Districts multi-select; empty (or null) means every district, so not marked required.

    The form lists each district by its label ("0101 Abbott Independent", `values_display`) and
    sends its id, so a run's conf (from the form, the page or the CLI) holds ids, as the schema
    expects. The Airflow 3 form marks a field required unless its schema type allows null.
    """
    districts = list(districts)
    ids = [d.id for d in districts]
    return Param(
        default if default is not None else [],
        type=["array", "null"],
        items={"type": "string", "enum": ids},
        examples=ids,
        values_display={d.id: d.label for d in districts},
        title="Districts",
        description="Districts to resync (empty: every configured district).",
    )


def start_request_units(names: list[str], refresh: bool, *, kind: str, kind_from_params: bool,
                        task_prefix: str = "") -> list[dict]:
    """start_request's body in either shape: check the conf's keys, validate the request and
    record it (refused input fails without a retry and writes nothing), have the scheduler skip
    the object tasks (`task_prefix` + object) outside the plan, and return one work unit per
    district. Idempotent: a retry reuses the run's batch (unique per run_id)."""
    from campus_sync.orchestration import tasks

    context = get_current_context()
    params = dict(context["params"])
    run_kind = kind
    if kind_from_params and params.get("requested_by") == "state":
        run_kind = "state_request"
    units = checked_request(context, lambda: tasks.start_request(
        params, kind=run_kind, user=triggering_user(context, params), dag_id=context["dag"].dag_id,
        run_id=context["run_id"]))
    planned = set(units[0]["objects"]) if units else set()
    unplanned = [n for n in names if n not in planned]
    if refresh and not attendance.in_plan(planned):
        unplanned.append(attendance.REFRESH)
    skip_downstream(context, (f"{task_prefix}{n}" for n in unplanned))
    return units


def upstream_objects(graph, name: str) -> list[str]:
    """The objects whose tasks must finish before `name`'s: its parents, plus every ancestor
    whose key it carries (a foreign key the engine checks at the state).

    The second set matters when objects between them are outside the plan: the scheduler skips
    those at once, so their own upstream edges no longer hold the order (Enrollment carries
    calendarID; with PersonIdentity skipped it must still wait for Calendar).
    """
    spec = graph.spec(name)
    return sorted(set(spec.parents) | {fk.target for fk in spec.foreign_keys})


def build_resync_dag(dag_id: str, *, kind: str, objects: Iterable[str], params: dict,
                     schedule: str | None, description: str, doc_md: str, tags: list[str],
                     kind_from_params: bool = False, shape: str = "per_district_object") -> DAG:
    """A resync DAG whose object tasks are `objects` (run order), wired by the hierarchy.

    `shape`: `per_district_object` (one mapped task group per district, one task per object in
    it) or `per_object` (one task per object, syncing every district; see `build_per_object`)."""
    if shape == "per_object":
        return build_per_object_dag(dag_id, kind=kind, objects=objects, params=params, schedule=schedule,
                                    description=description, doc_md=doc_md, tags=tags,
                                    kind_from_params=kind_from_params)
    if shape != "per_district_object":
        raise ValueError(f"unknown resync DAG shape {shape!r}; use per_object or per_district_object")
    graph = hierarchy.load()
    names = list(objects)
    present = set(names)
    refresh = with_attendance_refresh(names, params)

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

        @skipping_task(task_id="start_request", **BOOKKEEPING_ARGS)
        def start_request() -> list[dict]:
            """Validate the form and record the request; refuse bad input before any write.
            One work unit per district; the object tasks outside the plan are skipped."""
            return start_request_units(names, refresh, kind=kind, kind_from_params=kind_from_params,
                                       task_prefix=f"{GROUP}.")

        @task(trigger_rule="none_failed", multiple_outputs=False, map_index_template=MAP_INDEX_TEMPLATE)
        def sync_object(name: str, unit: dict):
            get_current_context()["district_label"] = unit.get("label") or unit["district_id"]
            if name not in unit["objects"]:  # normally skipped by the scheduler already
                raise AirflowSkipException(f"{name} is not part of this request")
            from campus_sync.engine import sync as engine
            from campus_sync.orchestration import tasks

            try:
                return tasks.run_object(name, unit)
            except engine.ConnectionFailedError:  # a lost or refused connection: Airflow retries the object
                raise
            except engine.SyncError as exc:  # a data error or a refusal: the same on every try
                raise AirflowFailException(str(exc)) from None

        @task(task_id="finish_request", trigger_rule="all_done", multiple_outputs=False, **BOOKKEEPING_ARGS)
        def finish_request(units: list[dict] | None):
            """Write the history rows from every object's XCom and fail the run if any failed."""
            from campus_sync.orchestration import tasks

            context = get_current_context()
            ti = context["ti"]
            if not units:
                raise finish_unstarted(context)
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_group_id=GROUP)
            states = states.get(ti.run_id, {})
            outcomes = {}
            indexes = list(range(len(units)))
            planned = {n for u in units for n in u["objects"]}
            if refresh and attendance.AGGREGATE in planned and any(
                    states.get(f"{GROUP}.{attendance.REFRESH}_{i}") != "skipped" for i in indexes):
                planned.add(attendance.REFRESH)
            for name in names + ([attendance.REFRESH] if refresh else []):
                if name not in planned:  # skipped in every district: no result (and no XCom to pull)
                    continue
                results = ti.xcom_pull(task_ids=f"{GROUP}.{name}", map_indexes=indexes)
                if not isinstance(results, list):
                    results = [results]
                for i in indexes:
                    state = states.get(f"{GROUP}.{name}_{i}") or states.get(f"{GROUP}.{name}")
                    result = results[i] if i < len(results) else None
                    outcomes[(name, i)] = (state, result)
            summary = tasks.finish_request(units, outcomes)
            if summary["failed"]:
                raise AirflowFailException(f"objects failed: {', '.join(summary['failed'])}")
            return summary

        units = start_request()
        start = units.operator
        finish = finish_request(units)

        @task_group(group_id=GROUP)
        def district(unit: dict) -> None:
            made = {}
            for name in names:
                made[name] = sync_object.override(task_id=name)(name, unit)
                start >> made[name] >> finish  # finish waits for every object, not the leaves only
                for parent in upstream_objects(graph, name):
                    if parent in present:
                        made[parent] >> made[name]
            if refresh:
                refresh_task = attendance_refresh_task(unit)
                start >> refresh_task >> made[attendance.AGGREGATE]
                refresh_task >> finish

        district.expand(unit=units)
    return dag


# ----------------------------------------------------------------- attendance refresh
def with_attendance_refresh(names: list[str], params: dict) -> bool:
    """Whether a DAG running `names` gets the AttendanceAggregationRefresh task (and adds its
    per-run switch to `params`): AttDayAggregation is among them and the deployment has a refresh."""
    if not attendance.in_plan(names) or not config.load().attendance_refresh.enabled:
        return False
    params.setdefault(attendance.PARAM, Param(
        True, type="boolean", title="Attendance Aggregation Refresh",
        description="Run each district's attendance aggregation refresh before AttDayAggregation syncs "
                    "(off: sync the aggregates as the district has them).",
    ))
    return True


def attendance_refresh_task(unit):
    """The district's refresh, its own task in the district group, upstream of AttDayAggregation
    (as Campus does: the refresh first, then the resync). Fails at once on a refused statement, so
    AttDayAggregation ends upstream_failed and stale aggregates are not synced."""

    @task(task_id=attendance.REFRESH, multiple_outputs=False, map_index_template=MAP_INDEX_TEMPLATE)
    def refresh_attendance(unit: dict):
        get_current_context()["district_label"] = unit.get("label") or unit["district_id"]
        if not attendance.in_plan(unit["objects"]):
            raise AirflowSkipException(f"{attendance.AGGREGATE} is not part of this request")
        requested = get_current_context()["params"].get(attendance.PARAM, True)
        try:
            result = attendance.run_refresh(unit, requested=requested is not False)
        except attendance.RefreshError as exc:  # not transient: do not retry
            raise AirflowFailException(str(exc)) from None
        if result is None:
            raise AirflowSkipException(attendance.OFF_MESSAGE)
        return result

    return refresh_attendance(unit)


# ----------------------------------------------------------------- one task per object
def build_per_object_dag(dag_id: str, *, kind: str, objects: Iterable[str], params: dict,
                         schedule: str | None, description: str, doc_md: str, tags: list[str],
                         kind_from_params: bool = False) -> DAG:
    """The resync DAG with one task per object that syncs every district of the request.

        start_request ──► District ──► School ──► … (the hierarchy, one task each) ──► finish_request

    A run has ~objects + 2 task instances whatever the number of districts (Airflow's own cost
    per task instance, ~2 s on a small machine, is paid ~55 times instead of ~55 × districts).
    Inside a task, `districts_in_parallel` districts sync at once; the tasks run in the Airflow
    pool `state_pool`, so the state sees at most slots × districts_in_parallel syncs, and a
    district at most one sync per running object task (≤ slots).

    A district whose connection fails is tried again inside the task (`connection_retries`:
    that district alone, on fresh connections, after a wait that doubles). A district whose sync
    of an object fails, or whose upstream object failed or did not run there, is recorded
    failed / not_run for that district alone; the other districts go on and the task succeeds.
    The task fails (and retries) only when every district it tried failed (the state down, say).
    finish_request fails the run when any district failed anywhere.
    Clearing one object's task re-runs that object for every district of the request (the
    engine is idempotent); its downstream tasks re-run when cleared with it.
    """
    cfg = config.load()
    graph = hierarchy.load()
    names = list(objects)
    present = set(names)
    refresh = with_attendance_refresh(names, params)
    parallel = cfg.districts_in_parallel
    retry = cfg.connection_retries
    task_args = {"pool": cfg.state_pool}

    with DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=CronTriggerTimetable(schedule, timezone="UTC", run_immediately=False) if schedule else None,
        catchup=False,
        max_active_runs=1,  # two resyncs of one district and object never interleave
        params=params,
        tags=tags,
        default_args=DEFAULT_ARGS,
        render_template_as_native_obj=True,
    ) as dag:

        @skipping_task(task_id="start_request", **BOOKKEEPING_ARGS)
        def start_request() -> list[dict]:
            """Validate the form and record the request; skip the object tasks outside the plan."""
            return start_request_units(names, refresh, kind=kind, kind_from_params=kind_from_params)

        def upstream_of(name: str) -> list[str]:
            ups = [p for p in upstream_objects(graph, name) if p in present]
            if refresh and name == attendance.AGGREGATE:
                ups.append(attendance.REFRESH)
            return sorted(ups)

        def outcome_of_districts(name: str, units: list[dict], run=None) -> dict:
            """Every district's outcome for `name`; fails the task only if every district tried failed."""
            from campus_sync.orchestration import tasks

            ti = get_current_context()["ti"]
            upstream = {up: ti.xcom_pull(task_ids=up) for up in upstream_of(name)}
            blocked = tasks.blocked_districts({k: v for k, v in upstream.items() if isinstance(v, dict)})
            out = tasks.run_for_districts(name, units, blocked, parallel, run=run, retry=retry)
            tried = [o for d, o in out.items() if d not in blocked]
            if tried and all(o["status"] == tasks.FAILED for o in tried):
                message = f"{name} failed in every district it tried ({len(tried)}), e.g.: {tried[0]['message']}"
                if any(o.get("transient") for o in tried):
                    raise RuntimeError(message)  # Airflow retries the object (every district again)
                raise AirflowFailException(message)  # refused by the engine: a retry would fail again
            return out

        @task(trigger_rule="none_failed", multiple_outputs=False, **task_args)
        def sync_object(name: str, units: list[dict]):
            if not units or name not in units[0]["objects"]:  # normally skipped by the scheduler already
                raise AirflowSkipException(f"{name} is not part of this request")
            return outcome_of_districts(name, units)

        @task(task_id=attendance.REFRESH, multiple_outputs=False, **task_args)
        def refresh_attendance(units: list[dict]):
            if not units or not attendance.in_plan(units[0]["objects"]):
                raise AirflowSkipException(f"{attendance.AGGREGATE} is not part of this request")
            requested = get_current_context()["params"].get(attendance.PARAM, True) is not False

            def one(unit: dict):
                return attendance.run_refresh(unit, requested=requested)

            return outcome_of_districts(attendance.REFRESH, units, run=one)

        @task(task_id="finish_request", trigger_rule="all_done", multiple_outputs=False, **BOOKKEEPING_ARGS)
        def finish_request(units: list[dict] | None):
            """Write the history rows the object tasks could not and fail the run if any district failed."""
            from campus_sync.orchestration import tasks

            context = get_current_context()
            ti = context["ti"]
            if not units:
                raise finish_unstarted(context)
            planned = set(units[0]["objects"])
            ids = [n for n in names if n in planned]
            if refresh and attendance.in_plan(planned):
                ids.append(attendance.REFRESH)
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=ids).get(ti.run_id, {})
            outcomes = {}
            for name in ids:
                result = ti.xcom_pull(task_ids=name)
                outcomes[name] = (states.get(name), result if isinstance(result, dict) else None)
            summary = tasks.finish_request_per_object(units, outcomes)
            if summary["failed"]:
                shown = summary["failed"][:20]
                more = f" and {len(summary['failed']) - len(shown)} more" if len(summary["failed"]) > len(shown) else ""
                raise AirflowFailException(f"district objects failed: {', '.join(shown)}{more}")
            return summary

        units = start_request()
        start = units.operator
        finish = finish_request(units)
        made = {}
        for name in names:
            made[name] = sync_object.override(task_id=name)(name, units)
            start >> made[name] >> finish  # finish waits for every object, not the leaves only
        for name in names:
            for parent in upstream_objects(graph, name):
                if parent in present:
                    made[parent] >> made[name]
        if refresh:
            refresh_task = refresh_attendance(units)
            start >> refresh_task >> made[attendance.AGGREGATE]
            refresh_task >> finish
    return dag
