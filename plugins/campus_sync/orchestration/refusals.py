"""How a request DAG's first and last tasks handle a request that never started: start_request
refuses bad input (recorded for finish_request, failing without retries), and finish_request,
given no work, closes whatever start_request wrote and fails the run saying why.

Used by the request DAGs whose start and finish tasks are written out (selective sync, Ed-Fi
Resync). Nothing heavy at import: a DAG file imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from airflow.sdk.exceptions import AirflowFailException

from campus_sync.orchestration.dagbuild import explain_missing_start, refused
from campus_sync.tools import requests

T = TypeVar("T")


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
