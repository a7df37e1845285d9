"""`campus-sync airflow` plumbing without starting Airflow: environment, pid files, stop."""

from __future__ import annotations

import os
import signal
import shutil
import subprocess
import sys
import time

import pytest

from campus_sync.orchestration.local_airflow import LocalAirflow, _alive, _group_has_live


@pytest.mark.db
def test_port_moves_ui_and_execution_api_together(tmp_path):
    af = LocalAirflow(home=tmp_path / "af", port=18093, meta_db="unit_airflow_meta")
    env = af.environment()
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18093/execution/"
    assert env["AIRFLOW__API__PORT"] == "18093"
    assert env["AIRFLOW__API__BASE_URL"] == "http://localhost:18093/"
    assert (env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"], env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]) == \
        ("18094", "18095")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("?")[0].endswith("/unit_airflow_meta")
    assert env["CAMPUS_SYNC_CONFIG"] == os.environ["CAMPUS_SYNC_CONFIG"]
    assert env["AIRFLOW_HOME"] == str(tmp_path / "af")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    # secrets are generated once and kept: JWTs and encrypted connections survive a restart
    again = LocalAirflow(home=tmp_path / "af", port=18093, meta_db="unit_airflow_meta").environment()
    assert again["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert again["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW__CORE__FERNET_KEY"]


def test_celery_adds_worker_and_broker(tmp_path):
    af = LocalAirflow(home=tmp_path, executor="CeleryExecutor", redis_port=16380)
    assert af.components == ("redis", "celery-worker", "api-server", "scheduler", "dag-processor", "triggerer")
    if shutil.which("redis-server"):
        assert af.command("redis")[1:5] == ["--port", "16380", "--bind", "127.0.0.1"]
    own = LocalAirflow(home=tmp_path, executor="CeleryExecutor", broker_url="redis://elsewhere:6379/0")
    assert "redis" not in own.components


def test_each_celery_worker_is_a_component_with_its_own_hostname(tmp_path):
    from campus_sync.orchestration.local_airflow import WORKER

    af = LocalAirflow(home=tmp_path, executor="CeleryExecutor", broker_url="redis://elsewhere:6379/0",
                      celery_workers=3, celery_concurrency=2)
    assert af.components[:3] == (WORKER, "celery-worker-2", "celery-worker-3")
    first, second = af.command(WORKER), af.command("celery-worker-2")
    assert first[1:] == ["celery", "worker", "--concurrency", "2", "--celery-hostname", "celery-worker@%h"]
    # one log server per machine: the others share the first one's log folder
    assert second[1:] == ["celery", "worker", "--concurrency", "2", "--celery-hostname", "celery-worker-2@%h",
                          "--skip-serve-logs"]
    assert LocalAirflow(home=tmp_path, celery_workers=2).components[0] == "api-server"  # LocalExecutor: none
    for bad in (0, 17, True, "2"):
        with pytest.raises(ValueError, match="celery_workers must be a whole number from 1 to 16"):
            LocalAirflow(home=tmp_path, executor="CeleryExecutor", celery_workers=bad)


def test_the_number_of_celery_workers_comes_from_the_environment_for_make_airflow(monkeypatch, capsys):
    from campus_sync.cli import main
    from campus_sync.orchestration.local_airflow import celery_workers_from_env

    monkeypatch.delenv("AIRFLOW_CELERY_WORKERS", raising=False)
    assert celery_workers_from_env() == 1
    monkeypatch.setenv("AIRFLOW_CELERY_WORKERS", "2")
    assert celery_workers_from_env() == 2
    monkeypatch.setenv("AIRFLOW_CELERY_WORKERS", "two")
    with pytest.raises(ValueError, match="AIRFLOW_CELERY_WORKERS=two must be a whole number from 1 to 16"):
        celery_workers_from_env()
    assert main(["airflow", "start", "--executor", "CeleryExecutor"]) == 1  # refused before anything starts
    assert "AIRFLOW_CELERY_WORKERS=two must be a whole number" in capsys.readouterr().err
    monkeypatch.delenv("AIRFLOW_CELERY_WORKERS")
    assert main(["airflow", "start", "--executor", "CeleryExecutor", "--celery-workers", "0"]) == 1
    assert "--celery-workers must be a whole number from 1 to 16, not 0" in capsys.readouterr().err


def test_stop_ends_exactly_the_recorded_process_groups(tmp_path):
    af = LocalAirflow(home=tmp_path)
    af.run_dir.mkdir()
    # a "component" with a child, in its own session like start() makes them
    proc = subprocess.Popen(["bash", "-c", "sleep 300 & wait", "airflow-fake-scheduler"], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        af.pid_file("scheduler").write_text(f"{proc.pid}\n")
        time.sleep(0.3)
        assert af.pids()["scheduler"] == proc.pid and af.pids()["api-server"] is None
        assert not af.running()
        assert af.stop(timeout=10) == ["scheduler"]
        assert not _group_has_live(proc.pid)
        assert not af.pid_file("scheduler").exists()
        assert _alive(bystander.pid)
        # a pid file naming a process that is not ours (recycled pid) is neither running nor stopped
        af.pid_file("api-server").write_text(f"{bystander.pid}\n")
        assert af.pids()["api-server"] is None
        assert af.stop() == [] and _alive(bystander.pid)
        assert af.stop() == []  # nothing left: harmless
        assert not af.pid_file("api-server").exists()
    finally:
        bystander.kill()
        bystander.wait()


class _FakeAirflow(LocalAirflow):
    """Components are shell stand-ins; the dag-processor dies at its first `dies` starts (exit 3)."""

    dies = 1

    def command(self, component: str) -> list[str]:
        if component == "dag-processor":
            marker = self.run_dir / "dag-processor.starts"
            return ["bash", "-c", f'echo x >> {marker}; [ $(wc -l < {marker}) -gt {self.dies} ] || exit 3; '
                                  'sleep 300 & wait', "airflow-fake-dag-processor"]
        return ["bash", "-c", "sleep 300 & wait", f"airflow-fake-{component}"]

    def health(self, timeout: float = 10) -> dict:
        return {key: {"status": "healthy"} for key in ("scheduler", "dag_processor", "triggerer", "metadatabase")}

    def _get(self, path: str, timeout: float) -> dict:
        return {}

    def environment(self) -> dict[str, str]:
        return dict(os.environ)


def _fake(tmp_path, dies: int) -> _FakeAirflow:
    af = _FakeAirflow(home=tmp_path)
    af.dies = dies
    for d in (af.run_dir, af.log_dir):
        d.mkdir(parents=True)
    af.password_file.write_text('{"admin": "x"}')
    for component in af.components:
        af._spawn(component, af.environment())
    time.sleep(0.5)
    return af


def test_a_component_that_dies_while_coming_up_is_restarted_and_logged(tmp_path):
    af = _fake(tmp_path, dies=1)
    try:
        af.wait_healthy(timeout=20, restarts=2)
        assert af.running()
        log = af.log_file("dag-processor").read_text()
        assert "dag-processor exited (exit code 3)" in log
        assert log.count("starting dag-processor") == 2
    finally:
        af.stop(timeout=5)


def test_a_component_that_keeps_dying_is_an_error_naming_its_exit_status(tmp_path):
    from campus_sync.orchestration.local_airflow import AirflowStartError

    af = _fake(tmp_path, dies=5)
    try:
        with pytest.raises(AirflowStartError, match=r"dag-processor exited \(exit code 3\)"):
            af.wait_healthy(timeout=20, restarts=2)
        assert af.log_file("dag-processor").read_text().count("starting dag-processor") == 3
    finally:
        af.stop(timeout=5)


# A stand-in for `airflow scheduler` with the process tree that matters when it dies: a log server
# child in its process group holding a port (serve-logs), a worker that moves to its own process
# group (as the task supervisor does with setpgid) and a task in its own session (as BashOperator's
# subprocess does). It exits at once, like the scheduler, when the log server's port is taken.
FAKE_SCHEDULER = r'''
import os, socket, subprocess, sys, time
port, record = int(sys.argv[1]), sys.argv[2]
probe = socket.socket()
try:
    probe.bind(("127.0.0.1", port))
except OSError as exc:
    print(f"serve-logs: {exc}", flush=True)
    sys.exit(1)
probe.close()
py = sys.executable
serve_logs = subprocess.Popen([py, "-c", "import socket, time, sys; s = socket.socket(); "
                               f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"])
worker = subprocess.Popen([py, "-c", "import os, time; os.setpgid(0, 0); time.sleep(600)"])
task = subprocess.Popen([py, "-c", "import time; time.sleep(600)"], start_new_session=True)
with open(record, "a") as out:
    out.write(f"{serve_logs.pid} {worker.pid} {task.pid}\n")
while serve_logs.poll() is None:
    time.sleep(0.2)
sys.exit(1)
'''


class _TreeAirflow(_FakeAirflow):
    """Every component a plain sleeper except the scheduler, which is FAKE_SCHEDULER."""

    dies = 0
    log_port = 0

    def command(self, component: str) -> list[str]:
        if component == "scheduler":
            script = self.run_dir / "airflow_fake_scheduler.py"
            script.write_text(FAKE_SCHEDULER)
            return [sys.executable, str(script), str(self.log_port), str(self.run_dir / "scheduler.tree")]
        return super().command(component)

    def migrate(self, env: dict[str, str]) -> None:
        pass

    def ensure_state_pool(self, env: dict[str, str]) -> None:  # no metadata database here
        pass


@pytest.fixture
def tree_airflow(tmp_path):
    """A _TreeAirflow on free ports; whatever its schedulers started is killed at the end even
    when the test fails, so a failing run leaves no sleeper behind."""
    from campus_sync.orchestration.local_airflow import free_port

    af = _TreeAirflow(home=tmp_path, port=free_port())
    af.log_port = free_port()
    for d in (af.run_dir, af.log_dir):
        d.mkdir(parents=True)
    af.password_file.write_text('{"admin": "x"}')
    yield af
    tree = af.run_dir / "scheduler.tree"
    for pid in (tree.read_text().split() if tree.exists() else []):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid_file in af.run_dir.glob("*.pid"):  # the stand-in components' own groups
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass


def _scheduler_children(af: _TreeAirflow, start: int) -> list[int]:
    """The pids a scheduler stand-in started (`start`: 0 for the first start, 1 for the second)."""
    deadline = time.monotonic() + 20
    tree = af.run_dir / "scheduler.tree"
    while time.monotonic() < deadline:
        lines = tree.read_text().splitlines() if tree.exists() else []
        if len(lines) > start:
            return [int(p) for p in lines[start].split()]
        time.sleep(0.2)
    raise AssertionError("the scheduler stand-in did not start its children")


def _kill_hard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # our child: reap it so it is gone, not a zombie


def test_a_restart_after_a_killed_scheduler_stops_what_it_left_behind(tree_airflow):
    af = tree_airflow
    try:
        assert af.start(timeout=30)
        orphans = _scheduler_children(af, 0)
        assert all(_alive(p) for p in orphans)
        _kill_hard(af.pids()["scheduler"])  # kill -9 mid-run
        assert all(_alive(p) for p in orphans)  # its log server, worker and task live on
        assert af.start(timeout=30)  # only the scheduler is started again, after its leftovers are stopped
        assert not any(_alive(p) for p in orphans)
        log = af.log_file("scheduler").read_text()
        assert "address already in use" not in log.lower()
        assert "stopped 3 processes left by the previous scheduler" in log
        assert af.running()
        second = _scheduler_children(af, 1)
        assert all(_alive(p) for p in second)
    finally:
        af.stop(timeout=5)
    assert not any(_alive(p) for p in second)
    assert af.leftovers() == {}


def test_stop_finds_processes_of_a_component_that_died_before(tree_airflow):
    """A scheduler killed with -9 and never restarted: `stop` still ends its whole tree."""
    af = tree_airflow
    try:
        af.start(timeout=30)
        orphans = _scheduler_children(af, 0)
        _kill_hard(af.pids()["scheduler"])
        af.pid_file("scheduler").unlink()  # even without its pid file
    finally:
        stopped = af.stop(timeout=5)
    assert "scheduler" in stopped
    assert not any(_alive(p) for p in orphans)
    assert af.leftovers() == {}


def test_airflow_stop_fails_naming_a_process_that_survives(tree_airflow, monkeypatch, capsys):
    """A process the stop cannot signal (a task run as another user gets EPERM): `campus-sync
    airflow stop` exits 1 naming it and keeps its pid file; the next stop ends it."""
    from campus_sync.orchestration import local_airflow as airflow_local
    from campus_sync.cli import main

    af = tree_airflow
    af.start(timeout=30)
    serve_logs, _, task = _scheduler_children(af, 0)
    real_send = airflow_local._send
    monkeypatch.setattr(airflow_local, "_send", lambda pid, sig: None if pid == task else real_send(pid, sig))
    try:
        assert main(["airflow", "stop", "--home", str(af.home), "--timeout", "2"]) == 1
        err = capsys.readouterr().err
        assert f"pid {task} (scheduler: " in err and "still running after SIGKILL" in err
        assert not _alive(serve_logs) and _alive(task)
        assert af.pid_file("scheduler").exists()
    finally:
        monkeypatch.setattr(airflow_local, "_send", real_send)
    assert main(["airflow", "stop", "--home", str(af.home)]) == 0
    assert "nothing of it is left running" in capsys.readouterr().out
    assert not _alive(task) and af.leftovers() == {}
    assert main(["airflow", "stop", "--home", str(af.home)]) == 0
    assert "nothing running" in capsys.readouterr().out


@pytest.mark.db
def test_the_shells_airflow_settings_win_except_the_required_few(tmp_path, monkeypatch):
    """A colleague's viewer login, a scheduler setting, secrets: what the user exports is what
    the components get. Only REQUIRED_SETTINGS are ours, whatever the shell says."""
    from campus_sync.orchestration.local_airflow import REQUIRED_SETTINGS

    exported = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,ana:viewer,raj:user",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "17",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "True",
        "AIRFLOW__CORE__FERNET_KEY": "user-chosen-fernet",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "18799",
        "AIRFLOW__CORE__PARALLELISM": "3",
        # required: another Airflow's metadata database and executor must not leak in
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://prod@prod-db/airflow",
        "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": "/elsewhere/dags",
        "AIRFLOW__API__PORT": "9999",
    }
    for key, value in exported.items():
        monkeypatch.setenv(key, value)
    af = LocalAirflow(home=tmp_path / "af", port=18093, meta_db="unit_airflow_meta")
    env = af.environment()
    for key, value in exported.items():
        if key in REQUIRED_SETTINGS:
            assert env[key] != value, key
        else:
            assert env[key] == value, key
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["AIRFLOW__API__PORT"] == "18093"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("?")[0].endswith("/unit_airflow_meta")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags") and env["AIRFLOW__CORE__DAGS_FOLDER"] != "/elsewhere/dags"
    assert af.shell_overrides() == sorted(["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR",
                                           "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__API__PORT"])
    # nothing exported: the defaults sized for this machine, one admin login
    for key in exported:
        monkeypatch.delenv(key)
    env = af.environment()
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False" and env["AIRFLOW__CORE__PARALLELISM"] == "8"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "18094"
    assert af.shell_overrides() == []


def test_summary_lists_every_login_with_its_role_and_password(tmp_path):
    af = LocalAirflow(home=tmp_path)
    af.run_dir.mkdir(parents=True)
    af.state_file.write_text('{"port": 8080, "executor": "LocalExecutor", "host": "0.0.0.0", '
                             '"users": "admin:admin,ana:viewer"}')
    af.password_file.write_text('{"admin": "pw-admin", "ana": "pw-ana"}\n')
    text = af.summary()
    assert "admin (admin) / pw-admin" in text and "ana (viewer) / pw-ana" in text
    assert str(af.password_file) in text


def test_overridden_settings_have_a_hint_or_the_constants_name():
    from campus_sync.orchestration.local_airflow import REQUIRED_SETTINGS
    from campus_sync.cli.airflow_cmd import OVERRIDE_HINTS

    assert set(OVERRIDE_HINTS) <= REQUIRED_SETTINGS


class _FakeCelery(_FakeAirflow):
    """Stand-ins for every component, started through `start()` (no migration, no pools)."""

    dies = 0

    def migrate(self, env: dict[str, str]) -> None:
        pass

    def ensure_state_pool(self, env: dict[str, str]) -> None:
        pass


def test_two_celery_workers_are_started_and_stopped_with_their_own_pid_files_and_logs(tmp_path):
    from campus_sync.cli.airflow_cmd import _deployment
    from campus_sync.orchestration.local_airflow import free_port

    af = _FakeCelery(home=tmp_path, port=free_port(), executor="CeleryExecutor",
                     broker_url="redis://127.0.0.1:1/0", celery_workers=2)
    af.home.mkdir(exist_ok=True)
    af.password_file.write_text('{"admin": "x"}')
    try:
        assert af.start(timeout=30)
        pids = af.pids()
        assert set(pids) == {"celery-worker", "celery-worker-2", "api-server", "scheduler", "dag-processor",
                             "triggerer"}
        assert all(pids.values()) and pids["celery-worker"] != pids["celery-worker-2"]
        for worker in ("celery-worker", "celery-worker-2"):
            assert af.pid_file(worker).exists() and "starting " + worker in af.log_file(worker).read_text()
        # `make airflow-stop` builds its deployment from what start recorded
        import argparse

        again = _deployment(argparse.Namespace(home=str(tmp_path), port=8080))
        assert again.celery_workers == 2 and again.executor == "CeleryExecutor"
        # even a deployment object that asks for one worker stops both: they are found by pid file and tag
        plain = LocalAirflow(home=tmp_path, port=af.port)
        stopped = plain.stop(timeout=5)
        assert stopped[-2:] == ["celery-worker-2", "celery-worker"]
        assert not any(_alive(pid) for pid in pids.values())
        assert not list(af.run_dir.glob("*.pid"))
    finally:
        af.stop(timeout=5)

