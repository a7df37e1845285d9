"""A process that runs a DAG with `dag.test()` and then goes on (`make demo` runs the weekly resync,
then the Ed-Fi Resync): the task context Airflow exports while a task runs must not outlive the
run, or the process's later connections would name themselves after the run's last task."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.db]


def test_the_task_context_ends_with_the_run(airflow_db, deployment):
    from campus_sync import db
    from campus_sync.orchestration import runner

    before = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CTX_")}
    out = runner.run_dag("campus_verification_summary", {"districts": ["0101"], "user": "bob"})
    assert out.state == "success", out
    assert {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CTX_")} == before
    assert db.application_name() == "campus-sync"
