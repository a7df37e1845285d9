"""Bad configuration, connections and conf are refused with a message naming the problem."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from campus_sync import config, db
from campus_sync.tools import requests
from campus_sync.cli import main
from campus_sync.hierarchy import HierarchyError, compile_path

GOOD = """state: KY
full_resync_schedule: '0 2 * * 0'
districts:
  - {id: "0101", name: A}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "campus_sync.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("text", "message"), [
    (GOOD.replace('"0101"', "0101"), r"districts\[0\]: id 65 must be a quoted string"),
    (GOOD.replace("'0 2 * * 0'", "'0 2 * * 8'"), r"'full_resync_schedule' '0 2 \* \* 8' is not a valid cron"),
    (GOOD.replace("'0 2 * * 0'", "'every sunday'"), r"full_resync_schedule"),
    (GOOD + "state_conn_id: 'campus state'\n", r"'state_conn_id' 'campus state' must be a connection id"),
    (GOOD.replace('name: A}', 'name: A, conn_id: "x-y"}'), r"conn_id 'x-y' must be a connection id"),
    (GOOD + "embeded_postgres: true\n", r"unknown setting 'embeded_postgres' \(did you mean 'embedded_postgres'\?\)"),
    (GOOD + "embedded_postgres: 'yes'\n", r"'embedded_postgres' must be true or false"),
    (GOOD + "max_delete_share: 0\n", r"'max_delete_share' must be a number in \(0, 1\]"),
    (GOOD + "x: &a [1]\ny: *a\n", r"anchors \(&a\) are not allowed"),
])
def test_bad_configuration_is_refused_naming_the_file_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError, match=message) as err:
        config.parse(path)
    assert str(path) in str(err.value)


def test_good_configuration_defaults_to_no_embedded_database(tmp_path):
    cfg = config.parse(write(tmp_path, GOOD))
    assert (cfg.embedded_postgres, cfg.max_delete_share, cfg.delete_guard_min_rows) == (False, 0.5, 10)
    assert cfg.district_ids == ("0101",)


def test_shipped_demo_configuration_asks_for_the_embedded_database():
    from campus_sync import paths

    assert config.parse(paths.include_dir() / "config" / "campus_sync.yaml").embedded_postgres


def test_an_unresolved_connection_is_an_error_naming_it_and_the_district(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(write(tmp_path, GOOD)))
    monkeypatch.delenv("AIRFLOW_CONN_CAMPUS_DISTRCT_0101", raising=False)
    db.dsn.cache_clear()
    try:
        with pytest.raises(db.ConnectionConfigError, match=r"connection 'campus_distrct_0101' for district 0101 "
                                                           r"is not defined: set AIRFLOW_CONN_CAMPUS_DISTRCT_0101"):
            db.dsn("campus_distrct_0101", "district 0101")
    finally:
        db.dsn.cache_clear()


def test_connections_go_through_airflows_connection_model(monkeypatch):
    db.dsn.cache_clear()
    monkeypatch.setenv("AIRFLOW_CONN_T_URI", "postgres://u:p%40ss@db.example:6432/campus?sslmode=verify-full"
                                              "&application_name=campus-sync&cursor=dictcursor")
    monkeypatch.setenv("AIRFLOW_CONN_T_JSON", '{"conn_type": "postgres", "host": "h", "login": "u", "schema": "s",'
                                               ' "port": 5433, "extra": {"sslmode": "require"}}')
    monkeypatch.setenv("AIRFLOW_CONN_T_BAD", '{"conn_type": "postgres", "host": ')
    monkeypatch.setenv("AIRFLOW_CONN_T_MYSQL", "mysql://u@h/db")
    try:
        from psycopg.conninfo import conninfo_to_dict

        uri = conninfo_to_dict(db.dsn("t_uri"))
        assert uri == {"host": "db.example", "port": "6432", "user": "u", "password": "p@ss", "dbname": "campus",
                       "sslmode": "verify-full", "application_name": "campus-sync",  # cursor: not libpq
                       "fallback_application_name": db.application_name()}
        assert conninfo_to_dict(db.dsn("t_json")) == {"host": "h", "port": "5433", "user": "u", "dbname": "s",
                                                      "sslmode": "require",
                                                      "fallback_application_name": db.application_name()}
        with pytest.raises(db.ConnectionConfigError, match="environment variable AIRFLOW_CONN_T_BAD is not a valid"):
            db.dsn("t_bad")
        with pytest.raises(db.ConnectionConfigError, match="AIRFLOW_CONN_T_MYSQL: conn_type is 'mysql'"):
            db.dsn("t_mysql")
    finally:
        db.dsn.cache_clear()


def test_hierarchy_alias_bomb_is_refused_quickly(tmp_path):
    bomb = ["objects:", "  - &a0 {name: X, description: d, parents: [], key: [id], columns: {id: int}}"]
    for i in range(1, 10):
        bomb.append(f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    assert len((tmp_path / "bomb.yaml").read_bytes()) < 700
    start = time.perf_counter()
    with pytest.raises(HierarchyError, match=r"bomb.yaml: not valid YAML: anchors \(&a0\) are not allowed"):
        compile_path(tmp_path)
    assert time.perf_counter() - start < 5  # not a timing claim: minutes or a MemoryError on main


def test_unknown_conf_keys_are_named():
    with pytest.raises(requests.RequestError, match=r"unknown conf key 'district' \(did you mean 'districts'\?\)"):
        requests.check_conf_keys({"objects": ["School"], "district": ["0101"]}, ["objects", "districts"])
    requests.check_conf_keys({"objects": [], "user": "alice"}, ["objects"])  # `user` is reserved


@pytest.mark.parametrize("limit", ["0", "-3", "x"])
def test_history_limit_must_be_positive(limit, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["history", "--limit", limit])
    assert exit_.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_user_errors_print_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(write(tmp_path, GOOD.replace('"0101"', "0101"))))
    assert main(["dsn", "state"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("campus-sync: ") and "Traceback" not in err and "quoted string" in err
    assert os.environ["CAMPUS_SYNC_CONFIG"].endswith("campus_sync.yaml")
