"""Configurations that would load but break the deployment are refused when read.

Two districts must never read the same database: Airflow looks a connection up as the
environment variable AIRFLOW_CONN_<ID upper-cased>, so ids that differ only in case are one
connection. Duplicate YAML keys (the last one silently wins), and schedules the weekly DAG's
timetable cannot run, are refused too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from campus_sync import config
from campus_sync.hierarchy import HierarchyError, compile_path

HEAD = "state: KY\nfull_resync_schedule: '0 2 * * 0'\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "campus_sync.yaml"
    p.write_text(text)
    return p


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as err:
        config.parse(path)
    message = str(err.value)
    assert str(path) in message
    return message


# ------------------------------------------------------------------ one database per district
@pytest.mark.parametrize("districts, first, second, conn", [
    # an explicit conn_id naming another district's default connection
    ('  - {id: "0101"}\n  - {id: "0199", conn_id: campus_district_0101}\n', "0101", "0199",
     "AIRFLOW_CONN_CAMPUS_DISTRICT_0101"),
    # the same, spelt in another case: Airflow upper-cases the id to find the variable
    ('  - {id: "0101"}\n  - {id: "0199", conn_id: CAMPUS_DISTRICT_0101}\n', "0101", "0199",
     "AIRFLOW_CONN_CAMPUS_DISTRICT_0101"),
    # ids that differ only in case: both defaults are one connection
    ('  - {id: "a"}\n  - {id: "A"}\n', "A", "a", "AIRFLOW_CONN_CAMPUS_DISTRICT_A"),
    # two explicit conn_ids that are the same connection
    ('  - {id: "0101", conn_id: sis_north}\n  - {id: "0102", conn_id: SIS_North}\n', "0101", "0102",
     "AIRFLOW_CONN_SIS_NORTH"),
])
def test_two_districts_on_one_connection_are_refused_naming_both(tmp_path, districts, first, second, conn):
    message = refused(tmp_path, HEAD + "districts:\n" + districts)
    assert f"districts {first} and {second}" in message
    assert conn in message


def test_a_district_on_the_state_connection_is_refused(tmp_path):
    message = refused(tmp_path, HEAD + "state_conn_id: campus_state\ndistricts:\n"
                                       '  - {id: "0101", conn_id: Campus_State}\n')
    assert "district 0101" in message and "state_conn_id" in message and "AIRFLOW_CONN_CAMPUS_STATE" in message


def test_distinct_connections_load(tmp_path):
    cfg = config.parse(write(tmp_path, HEAD + "districts:\n"
                                              '  - {id: "0101"}\n  - {id: "0199", conn_id: campus_district_0199b}\n'
                                              '  - {id: "b"}\n  - {id: "c", conn_id: sis_c}\n'))
    assert [d.conn_id for d in cfg.districts] == ["campus_district_0101", "campus_district_0199b",
                                                  "campus_district_b", "sis_c"]


def test_collision_key_is_airflows_environment_lookup(monkeypatch):
    """The key compared is the variable Airflow's environment backend reads for the id."""
    from airflow.secrets.environment_variables import CONN_ENV_PREFIX, EnvironmentVariablesBackend

    for conn_id in ("campus_district_a", "CAMPUS_DISTRICT_A", "Campus_District_A"):
        var = config.connection_env_var(conn_id)
        assert var.startswith(CONN_ENV_PREFIX)
        monkeypatch.setenv(var, "postgres://u@h/db")
        assert EnvironmentVariablesBackend().get_conn_value(conn_id) == "postgres://u@h/db"
        monkeypatch.delenv(var)
        assert EnvironmentVariablesBackend().get_conn_value(conn_id) is None


# ------------------------------------------------------------------ duplicate YAML keys
@pytest.mark.parametrize("text, key", [
    (HEAD + 'districts:\n  - {id: "0101"}\ndistricts:\n  - {id: "0102"}\n', "districts"),
    (HEAD + "state: TN\n" + 'districts:\n  - {id: "0101"}\n', "state"),
    (HEAD + 'districts:\n  - {id: "0101", name: A, name: B}\n', "name"),
    (HEAD + 'attendance_refresh:\n  enabled: true\n  enabled: false\ndistricts:\n  - {id: "0101"}\n', "enabled"),
])
def test_duplicate_keys_in_the_configuration_are_refused(tmp_path, text, key):
    message = refused(tmp_path, text)
    assert f"duplicate key {key!r}" in message and "line" in message


def test_duplicate_keys_in_the_hierarchy_are_refused(tmp_path):
    (tmp_path / "objects.yaml").write_text(
        "objects:\n"
        "  - name: School\n"
        "    description: a school\n"
        "    parents: []\n"
        "    parents: [District]\n"
        "    key: [schoolID]\n"
        "    columns: {schoolID: int}\n")
    with pytest.raises(HierarchyError) as err:
        compile_path(tmp_path)
    assert "objects.yaml" in str(err.value) and "duplicate key 'parents'" in str(err.value)


def test_the_shipped_yaml_has_no_duplicate_keys():
    from campus_sync import hierarchy, paths

    hierarchy.loader.compile_path(paths.hierarchy_dir(), paths.sql_dir())
    for path in sorted((paths.include_dir() / "config").rglob("*.yaml")):
        if path.name != "compose.yaml":
            config.parse(path)


# ------------------------------------------------------------------ schedules that never run
@pytest.mark.parametrize("schedule, problem", [
    ("0 2 31 2 *", "never runs"),          # February 31st
    ("0 2 30 2 *", "never runs"),
    ("0 2 * * 0 30", "has 6 fields"),      # croniter would read the sixth as seconds
    ("0 2 * * 0 30 2031", "has 7 fields"),
    ("0 2 * * 8", "not a valid cron expression"),
    ("", "not a valid cron expression"),
    ("@fortnightly", "not a valid cron expression"),
])
def test_a_schedule_the_timetable_cannot_run_is_refused(tmp_path, schedule, problem):
    message = refused(tmp_path, f"state: KY\nfull_resync_schedule: {schedule!r}\n"
                                'districts:\n  - {id: "0101"}\n')
    assert "'full_resync_schedule'" in message and problem in message


@pytest.mark.parametrize("schedule", ["0 2 * * 0", "0 0 29 2 *", "0 2 31 2 1", "@weekly", "@quarterly",
                                      "@daily", "0 2 * * sun"])
def test_schedules_the_timetable_runs_load(tmp_path, schedule):
    from airflow.timetables.trigger import CronTriggerTimetable

    cfg = config.parse(write(tmp_path, f"state: KY\nfull_resync_schedule: {schedule!r}\n"
                                       'districts:\n  - {id: "0101"}\n'))
    assert cfg.full_resync_schedule == schedule
    timetable = CronTriggerTimetable(cfg.full_resync_schedule, timezone="UTC")
    timetable.validate()
    import pendulum

    from airflow.timetables.base import TimeRestriction

    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(pendulum.datetime(2026, 1, 1), None, False))
    assert info is not None


def test_presets_are_airflows():
    from airflow.utils.dates import cron_presets

    assert config.CRON_PRESETS == cron_presets
