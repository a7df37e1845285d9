"""The background server: restarts keep the data, a second start changes nothing, stop ends
exactly what start started; the CLI around it; the bench."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from edfi_helpers import Api, Server, next_id, student
from pg_helpers import dsn_for

from campus_sync.cli import main
from campus_sync.edfi.api.server import ApiStartError, LocalEdFiApi, Options

pytestmark = pytest.mark.db


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_data_and_tokens_survive_a_restart(start_api):
    srv = start_api()
    api = Api(srv)
    doc_id = api.created("students", student(f"K{next_id()}"))
    old_pid = srv.info["pid"]
    assert srv.api.stop() == old_pid and not _alive(old_pid)
    info, started = srv.api.start(timeout=120)
    assert started and info["pid"] != old_pid and info["key"] == srv.info["key"]
    again = Api(Server(srv.api, info), token=api.token)  # the token issued before the restart
    assert again.get("students", doc_id).status_code == 200


def test_a_second_start_is_harmless_and_other_options_are_refused(start_api):
    srv = start_api()
    info, started = srv.api.start()
    assert not started and info == srv.info
    other = LocalEdFiApi(Options(port=0, faults=0.5), state_dir=srv.api.state_dir, dsn=srv.api.dsn)
    with pytest.raises(ApiStartError, match=r"already running .*faults"):
        other.start()
    elsewhere = LocalEdFiApi(Options(port=0, token_limit=0), state_dir=srv.api.state_dir, dsn=srv.api.dsn + "x")
    with pytest.raises(ApiStartError, match=r"already running .*dsn"):
        elsewhere.start()
    assert srv.api.pid() == srv.info["pid"]


def test_stop_ends_exactly_what_start_started(start_api, tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        api = LocalEdFiApi(state_dir=tmp_path)
        (tmp_path / "api.pid").write_text(f"{stranger.pid}\n")  # a pid file naming someone else's process
        assert api.pid() is None and api.stop() is None
        assert _alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()
    srv = start_api()
    pid = srv.info["pid"]
    assert srv.api.stop() == pid and not _alive(pid)
    assert not (srv.api.state_dir / "api.pid").exists() and not (srv.api.state_dir / "api.json").exists()
    assert srv.api.stop() is None  # nothing left to stop


def test_cli_start_status_stop(edfi_dsn, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAMPUS_SYNC_HOME", str(tmp_path))
    try:
        assert main(["edfi", "api", "start", "--port", "0", "--json", "--dsn", edfi_dsn]) == 0
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1
        info = json.loads(out[0])
        assert {"base_url", "oauth_url", "key", "secret", "port"} <= set(info) and info["started"] is True
        assert info["base_url"] == f"http://127.0.0.1:{info['port']}"

        assert main(["edfi", "api", "status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["running"] is True
        assert main(["edfi", "api", "start", "--port", "0", "--dsn", edfi_dsn]) == 0  # harmless
        words = capsys.readouterr().out
        assert words.startswith("already running") and info["base_url"] in words and info["secret"] in words
        assert main(["edfi", "api", "start", "--faults", "0.3", "--dsn", edfi_dsn]) == 1
        assert "already running" in capsys.readouterr().err
    finally:
        assert main(["edfi", "api", "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(["edfi", "api", "status"]) == 3
    assert "not running" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--faults", "1.5"], "between 0 and 1"),
    (["--fault-kinds", "429,teapot"], "unknown fault kind"),
    (["--port", "70000"], "65535"),
    (["--token-ttl", "0"], "1 or more"),
])
def test_cli_refuses_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(["edfi", "api", "start", *argv])
    assert message in capsys.readouterr().err


def test_cli_model(capsys):
    assert main(["edfi", "model"]) == 0
    out = capsys.readouterr().out
    assert "Data Standard 5.2.0" in out and "resync group 5" in out and "studentSchoolAssociations" in out
    assert main(["edfi", "model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dependencies"][0]["order"] == 1


def test_bench_posts_students(server_dsn, capsys):
    """The bench runs end to end (its figures are for the report, not asserted)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier("t_edfi_bench")))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("t_edfi_bench")))
    dsn = dsn_for(server_dsn, "t_edfi_bench")
    assert main(["bench", "edfi", "--api-only", "--students", "40", "--concurrency", "4", "--dsn", dsn, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["create"]["statuses"] == {"201": 40} and res["update"]["statuses"] == {"200": 40}
    assert res["create"]["per_second"] > 0
    # without --api-only: the Ed-Fi Resync's rounds (first send, unchanged, 1 % change) end to end
    assert main(["bench", "edfi", "--students", "5", "--concurrency", "2", "--dsn", dsn, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["round"] for r in res["rounds"]] == ["first send", "unchanged resync", "1% change"]
    assert all(r["status"] == "complete" for r in res["rounds"]) and res["rounds"][0]["sent"] > 0
    assert res["rounds"][1]["sent"] == 0
    # where the time goes: the CPU each side spent per record
    assert res["rounds"][0]["client_cpu_ms_per_record"] > 0 and res["rounds"][0]["api_cpu_ms_per_record"] > 0


def test_a_killed_server_is_seen_as_stopped_and_starts_again(start_api):
    import signal

    srv = start_api()
    os.kill(srv.info["pid"], signal.SIGKILL)
    for _ in range(50):
        if not _alive(srv.info["pid"]):
            break
        time.sleep(0.1)
    assert srv.api.info() is None
    info, started = srv.api.start(timeout=120)
    assert started and info["pid"] != srv.info["pid"]
    assert Api(Server(srv.api, info)).get("schools").status_code == 200


def test_bad_options_and_an_unreachable_database_are_refused_before_spawning(tmp_path):
    for bad in ({"routes": "tenant_year"}, {"tenant": "a/b"}, {"faults": 2.0}, {"fault_kinds": ("418",)}):
        with pytest.raises(ValueError):
            Options(**bad)
    api = LocalEdFiApi(Options(port=0), state_dir=tmp_path, dsn="postgresql://edfi@127.0.0.1:1/nowhere")
    with pytest.raises(ApiStartError, match="cannot use its database"):
        api.start()
    assert not (tmp_path / "api.pid").exists()
