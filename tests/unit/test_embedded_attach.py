"""Tasks attach to a running embedded server without pgserver (its attach and exit hook take an
inter-process lock shared by every task), and fall back to pgserver when it is not running."""

from __future__ import annotations

import os

import pytest

from campus_sync import db

pytestmark = pytest.mark.db


def test_running_server_is_found_from_its_pid_file(server_dsn):
    if os.environ.get("CAMPUS_SYNC_TEST_DSN"):
        pytest.skip("an external test server: no embedded pid file")
    assert db.running_embedded_uri("campus_x") == db.embedded_server().get_uri("campus_x")


def test_no_pid_file_or_dead_pid_means_not_running(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMPUS_SYNC_HOME", str(tmp_path))
    assert db.running_embedded_uri("campus_state") is None
    (tmp_path / "pgdata").mkdir()
    pid_file = tmp_path / "pgdata" / "postmaster.pid"
    pid_file.write_text("garbage\n")
    assert db.running_embedded_uri("campus_state") is None
    # a pid that cannot exist (above pid_max), otherwise a well-formed file
    pid_file.write_text("\n".join(["99999999", str(tmp_path), "1", "5432", str(tmp_path), "", "0 0", "ready", ""]))
    assert db.running_embedded_uri("campus_state") is None


@pytest.mark.parametrize("runtime", ["unset", "wrong mode"])
def test_dsn_prints_only_the_uri(server_dsn, tmp_path, runtime):
    """`campus-sync dsn` writes the URI and nothing on stderr, whether XDG_RUNTIME_DIR is unset
    (a container, cron, ssh without a login session) or not a private directory."""
    import subprocess
    import sys
    from pathlib import Path

    if os.environ.get("CAMPUS_SYNC_TEST_DSN"):
        pytest.skip("an external test server: `dsn` does not touch the embedded one")
    env = dict(os.environ)
    env.pop("XDG_RUNTIME_DIR", None)
    if runtime == "wrong mode":
        shared = tmp_path / "world_readable"
        shared.mkdir(mode=0o755)
        shared.chmod(0o755)
        env["XDG_RUNTIME_DIR"] = str(shared)
    exe = Path(sys.executable).with_name("campus-sync")
    proc = subprocess.run([str(exe), "dsn", "state"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("postgresql://") and proc.stdout.count("\n") == 1
