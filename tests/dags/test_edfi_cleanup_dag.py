"""edfi_resync with Run Clean-up Logic through real dag.test() runs against a real local Ed-Fi
API: the delete step runs the clean-up, a dry run reports a section posted straight to the API
(unknown to the send log) and Confirm clean-up deletes it, its student association first."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edfi"))
from resync_helpers import point_connection, seed_edfi, start_fresh_api  # noqa: E402
from cleanup_helpers import ids, ods_only_section, schools, tennessee_config  # noqa: E402

from campus_sync.orchestration.runner import run_dag  # noqa: E402

pytestmark = [pytest.mark.db, pytest.mark.airflow]
DAG_ID = "edfi_resync"


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch, airflow_db):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    tennessee_config(tmp_path, monkeypatch)
    yield {**deployment, "api": api, "info": info, "dsn": deployment["districts"]["0101"]}
    api.stop()


def last_batch() -> dict:
    from campus_sync.edfi import resync
    from campus_sync.tools import history

    with resync.state_connection() as conn:
        return history.batches(conn, limit=1)[0]


def test_cleanup_runs_in_the_delete_step(edfi):
    from campus_sync.edfi import cleanup as edfi_cleanup

    info = edfi["info"]
    a = schools(edfi["dsn"])[0]
    assert edfi_cleanup.run({"configuration": "demo", "all_schools": True}, user="tester")["status"] == "complete"
    section, assoc = ods_only_section(info, a, "ODS-ONLY-DAG")
    conf = {"configuration": "demo", "schools": [str(a)], "resources": ["studentSectionAssociations"],
            "run_cleanup": True}

    dry = run_dag(DAG_ID, conf)
    assert dry.ok, dry.task_states
    batch = last_batch()
    by = {r["object"]: r for r in batch["results"]}
    assert by["sections"]["error_reasons"].get("cleanup_dry_run") == 1, by["sections"]
    assert by["studentSectionAssociations"]["error_reasons"].get("cleanup_dry_run") == 1
    assert batch["details"]["cleanup"]["sections"]["absent"] == 1
    assert section in ids(info, "sections") and assoc in ids(info, "studentSectionAssociations")

    confirmed = run_dag(DAG_ID, {**conf, "confirm_cleanup": True})
    assert confirmed.ok, confirmed.task_states
    by = {r["object"]: r for r in last_batch()["results"]}
    assert by["sections"]["deleted"] == by["studentSectionAssociations"]["deleted"] == 1
    assert section not in ids(info, "sections") and assoc not in ids(info, "studentSectionAssociations")
