"""Unpausing the weekly full resync schedules the next slot, never last week's (README: first run)."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = [pytest.mark.airflow]


def test_first_unpause_waits_for_the_next_slot(airflow_db):
    from airflow.serialization.serialized_objects import DagSerialization

    from campus_sync.orchestration import runner

    dag = runner.get_dag("campus_full_resync")
    # a start_date would make catchup=False schedule the most recent past slot at once
    assert dag.start_date is None and dag.catchup is False
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the scheduler sees
    info = serialized.next_dagrun_info(last_automated_run_info=None)
    now = dt.datetime.now(dt.timezone.utc)
    assert now < info.run_after <= now + dt.timedelta(days=7)
    assert info.run_after.weekday() == 6 and (info.run_after.hour, info.run_after.minute) == (2, 0)
