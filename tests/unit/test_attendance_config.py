"""`attendance_refresh` in the deployment config  and the example deployments."""

from __future__ import annotations

from pathlib import Path

import pytest

from campus_sync import config, hierarchy

ROOT = Path(__file__).resolve().parents[2]
BASE = "state: NV\ndistricts:\n  - {id: '01'}\n"


def parse(tmp_path: Path, extra: str = "") -> config.Config:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra)
    return config.parse(path)


def test_default_is_the_demo_routine(tmp_path):
    refresh = parse(tmp_path).attendance_refresh
    assert refresh.enabled is True
    assert refresh.sql == "SELECT * FROM campus.refresh_attendance_aggregation(%(end_year)s)"


def test_custom_statement_and_off(tmp_path):
    cfg = parse(tmp_path, 'attendance_refresh:\n  sql: "CALL att.refresh(%(end_year)s, %(district_id)s);"\n')
    assert cfg.attendance_refresh.sql == "CALL att.refresh(%(end_year)s, %(district_id)s)"
    assert parse(tmp_path, "attendance_refresh: false\n").attendance_refresh.enabled is False
    assert parse(tmp_path, "attendance_refresh: {enabled: false}\n").attendance_refresh.enabled is False


@pytest.mark.parametrize("value, message", [
    ('"SELECT 1"', "must be a mapping"),
    ("{sql: 'SELECT f()'}", "must pass the school year as %(end_year)s"),
    ("{sql: 'SELECT f(%(year)s)'}", "unknown placeholder(s) year"),
    ("{sql: 'SELECT f(%(end_year)s); DROP TABLE x'}", "must be one statement"),
    ("{sql: \"SELECT f(%(end_year)s) WHERE x LIKE 'a%'\"}", "a literal % must be written %%"),
    ("{sql: ''}", "must be one SQL statement"),
    ("{sql: 'SELECT f(%(end_year)s)', enable: true}", "unknown key(s) enable"),
    ("{enabled: 'yes'}", "enabled must be true or false"),
])
def test_bad_values_are_refused_naming_the_field(tmp_path, value, message):
    with pytest.raises(config.ConfigError) as err:
        parse(tmp_path, f"attendance_refresh: {value}\n")
    assert "attendance_refresh" in str(err.value) and message in str(err.value), str(err.value)


@pytest.mark.parametrize("name, state", [("nevada", "NV"), ("bie", "BIE")])
def test_example_deployments(name, state):
    """The examples parse, sync the attendance objects, nothing of another state, and use the
    embedded database explicitly."""
    path = ROOT / "include" / "config" / "examples" / f"{name}.yaml"
    cfg = config.parse(path)
    assert cfg.state == state and len(cfg.districts) >= 2 and cfg.attendance_refresh.enabled
    assert "embedded_postgres: true" in path.read_text()
    graph = hierarchy.load()
    enabled = graph.enabled(state)
    assert {"AttDayAggregation", "AttendanceExcuse"} <= set(enabled)
    assert "Title1KY" not in enabled and all(graph.spec(n).applies_to(state) for n in enabled)
    assert cfg.state_conn_id != "campus_state"  # its own state database, not the KY demo's


def test_hierarchy_show_for_a_state(capsys):
    """`campus-sync hierarchy show --state NV`: what an NV deployment syncs, the refresh noted."""
    from campus_sync.cli import main

    assert main(["hierarchy", "show", "--state", "NV", "--json"]) == 0
    names = [o["name"] for o in __import__("json").loads(capsys.readouterr().out)["objects"]]
    assert names == list(hierarchy.load().enabled("NV"))
    assert "AttDayAggregation" in names and "Title1KY" not in names and "AttendanceBIEAbsentDays" not in names
    assert main(["hierarchy", "show", "--state", "nv"]) == 0
    out = capsys.readouterr().out
    assert f"{len(names)} objects synced for state NV" in out
    assert "AttendanceAggregationRefresh: each district's attendance aggregation refresh runs first" in out
    assert main(["hierarchy", "show", "--state", "KY"]) == 0
    assert "AttendanceAggregationRefresh" not in capsys.readouterr().out
    assert main(["hierarchy", "show", "Title1KY", "--state", "NV"]) == 1
    assert "Title1KY does not apply to state NV" in capsys.readouterr().err
