"""`campus-sync airflow` plumbing without starting Airflow: environment, pid files, stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from campus_sync.airflow_local import LocalAirflow, _alive, _group_has_live


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
    from campus_sync.airflow_local import AirflowStartError

    af = _fake(tmp_path, dies=5)
    try:
        with pytest.raises(AirflowStartError, match=r"dag-processor exited \(exit code 3\)"):
            af.wait_healthy(timeout=20, restarts=2)
        assert af.log_file("dag-processor").read_text().count("starting dag-processor") == 3
    finally:
        af.stop(timeout=5)
