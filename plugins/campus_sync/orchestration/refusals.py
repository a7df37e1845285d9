"""How a request DAG's first and last tasks handle a request that never started: start_request
refuses bad input (recorded for finish_request, failing without retries), and finish_request,
given no work, closes whatever start_request wrote and fails the run saying why.

Used by every request DAG (the resyncs, the selective sync, the Ed-Fi Resync). Nothing heavy at
import: a DAG file imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from airflow.sdk.exceptions import AirflowFailException

from campus_sync.tools import requests

REFUSED_KEY = "refused"  # start_request's XCom when the request is refused (read by finish_request)

T = TypeVar("T")


def refused(context, exc: Exception) -> AirflowFailException:
    """Record why the request was refused (for finish_request) and fail without retrying."""
    message = f"request refused: {exc}"
    context["ti"].xcom_push(key=REFUSED_KEY, value=message)
    return AirflowFailException(message)


def explain_missing_start(ti) -> str:
    """What happened to start_request, for a finish_request that got no work units."""
    message = ti.xcom_pull(task_ids="start_request", key=REFUSED_KEY)
    if message:
        return str(message)
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=["start_request"], run_ids=[ti.run_id])
    state = states.get(ti.run_id, {}).get("start_request")
    if state == "failed":
        return "start_request failed (an error, not refused input; see its log); nothing was synced"
    return f"start_request did not run (state: {state or 'none'}); nothing was synced"


def checked_request(context, build: Callable[[], T], *errors: type[Exception]) -> T:
    """start_request's validation: a conf key the DAG does not declare is refused, then `build()`
    validates the form. Refused input (requests.RequestError, or one of `errors`) fails the task
    at once with a message naming it, kept for finish_request; nothing has been written."""
    try:
        requests.check_conf_keys(context["dag_run"].conf, context["dag"].params.keys())
        return build()
    except (requests.RequestError, *errors) as exc:
        raise refused(context, exc) from None


def finish_unstarted(context) -> AirflowFailException:
    """For a finish_request that got no work: close the run's request if start_request wrote one
    (it never stays running), and the failure to raise, naming what happened to start_request."""
    from campus_sync.orchestration import tasks

    ti = context["ti"]
    message = explain_missing_start(ti)
    tasks.abandon_request(context["dag"].dag_id, ti.run_id, message)
    return AirflowFailException(message)
